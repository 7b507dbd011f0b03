"""Code run in a fresh Python, to see which modules it imports (``from fresh_python import ...``,
pytest puts ``tests/`` on the path)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"


def run_importing_none_of(
    modules: tuple[str, ...], code: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess:
    """Run ``code`` in a new interpreter importing this checkout's digitrec, then fail (a
    non-zero return code) if it imported any of ``modules`` (top-level names)."""
    check = (
        "\nimport sys\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {modules!r})\n"
        "assert not heavy, heavy\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run(
        [sys.executable, "-c", code + check], input=stdin, capture_output=True, env=env
    )
