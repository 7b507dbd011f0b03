"""Shared by the benchmark scripts: the machine's description, medians, and the tables they
write into the README or the documentation's benchmark pages."""

from __future__ import annotations

import os
import platform
import re
import statistics
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from digitrec.realdigits import REAL_DIR_ENV

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
# The real handwriting sets (CVL, ORAND-CAR-A): DIGITREC_REAL_DIR, else beside the project.
REAL_SETS = Path(os.environ.get(REAL_DIR_ENV) or ROOT.parent / "shared" / "realdigits")
DOCS = ROOT / "docs"


def machine() -> str:
    """One line naming the machine and the date, for the head of every table."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()}; measured {date.today():%Y-%m-%d}"


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def write_into_readme(name: str, text: str, readme: Path | None = None) -> None:
    """Replace the block between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` with
    ``text``, in ``readme`` if given, else in the one page of README.md and docs/**/*.md that
    holds it (each benchmark's tables live on its page under docs/benchmarks/)."""
    start, end = block_markers(name)
    page = readme or block_page(name, [README, *sorted(DOCS.rglob("*.md"))])
    content = page.read_text()
    if start not in content:
        raise SystemExit(f"{page} has no {start} … {end} block to fill")
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    content = pattern.sub(lambda _: f"{start}\n{text}\n{end}", content)
    tmp = page.with_suffix(".md.tmp")
    tmp.write_text(content)
    tmp.replace(page)


def block_markers(name: str) -> tuple[str, str]:
    """The lines that open and close the block of benchmark table ``name``."""
    return f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"


def block_page(name: str, pages: Sequence[Path]) -> Path:
    """The one page of ``pages`` that holds the block ``name``; none or several is an error."""
    start, end = block_markers(name)
    holders = [page for page in pages if start in page.read_text().splitlines()]
    if not holders:
        raise SystemExit(
            f"no page holds a {start} … {end} block: add one, on its own lines, to the "
            "benchmark's page under docs/benchmarks/"
        )
    if len(holders) > 1:
        names = ", ".join(str(page) for page in holders)
        raise SystemExit(f"{start} is in {len(holders)} pages ({names}): keep it in one")
    return holders[0]
