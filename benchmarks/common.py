"""Shared by the benchmark scripts: the machine's description, medians, and README tables."""

from __future__ import annotations

import os
import platform
import re
import statistics
from collections.abc import Sequence
from datetime import date
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


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


def write_into_readme(name: str, text: str, readme: Path = README) -> None:
    """Replace the block between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` in the README."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    content = readme.read_text()
    if start not in content:
        raise SystemExit(f"{readme} has no {start} … {end} block to fill")
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    content = pattern.sub(lambda _: f"{start}\n{text}\n{end}", content)
    tmp = readme.with_suffix(".md.tmp")
    tmp.write_text(content)
    tmp.replace(readme)
