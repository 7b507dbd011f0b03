"""The README and the documentation site: the site builds strictly, the README stays short and
for users, and the benchmark scripts find their tables wherever the pages keep them."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 250
# How a choice was made belongs in CHANGELOG.md and commit messages, not in the pages.
PROCESS_HISTORY = re.compile(
    r"\b(not )?adopted\b|\brule written\b|\bwritten (down )?(before|first)\b|\btried\b"
    r"|\b(this|the previous|an earlier) pass\b|\bprevious session\b",
    re.IGNORECASE,
)
# The blocks the benchmark scripts write (benchmarks/*.py: write_into_readme(NAME, ...)).
BENCHMARK_BLOCKS = (
    "default",
    "models",
    "fast",
    "reading",
    "reading-test",
    "ceiling-validation",
    "ceiling-test",
    "reading-speed",
    "own",
    "own-choose",
    "tune",
    "inference",
    "serve",
    "batch",
    "page_budget",
    "real_sets",
    "finetune_strings",
    "policy-rules",
)


@pytest.fixture(scope="module")
def common():
    """benchmarks/common.py as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("bench_common", ROOT / "benchmarks" / "common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pages() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def test_the_documentation_site_builds_strictly_with_generated_references(tmp_path):
    pytest.importorskip("mkdocs", reason="needs mkdocs (the dev extra: make test installs it)")
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    cli = (site / "cli" / "index.html").read_text()
    from digitrec.cli import build_parser

    for command in build_parser().commands.choices:  # as typed: train-lines
        assert f"usage: digitrec {command}" in cli, f"the CLI reference lacks digitrec {command}"
    api = (site / "api" / "index.html").read_text()
    for name in ("Recognizer", "read_files", "train", "export_model", "create_app"):
        assert re.search(rf'id="digitrec\.[\w.]*\b{name}"', api), f"the API page lacks {name}"


def test_the_readme_is_short():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines"


def test_the_readme_opens_with_the_two_set_up_commands():
    opening = README.read_text().split("```")[1]
    commands = [line.split("#")[0].strip() for line in opening.splitlines()[1:]]
    assert commands == ["make run", "make test"]


@pytest.mark.parametrize("page", pages(), ids=lambda page: str(page.relative_to(ROOT)))
def test_a_page_tells_no_process_history(page):
    found = [
        f"line {number}: {match[0]!r}"
        for number, line in enumerate(page.read_text().splitlines(), 1)
        for match in PROCESS_HISTORY.finditer(line)
    ]
    assert not found, f"{page.name}: {'; '.join(found)}"


@pytest.mark.parametrize("name", BENCHMARK_BLOCKS)
def test_each_benchmark_table_has_one_block_on_one_page(common, name):
    start, end = common.block_markers(name)
    page = common.block_page(name, pages())
    content = page.read_text()
    assert content.count(start) == 1 and content.count(end) == 1
    assert content.index(start) < content.index(end)


def test_a_table_is_written_into_the_docs_page_that_holds_its_block(common, tmp_path, monkeypatch):
    readme, page = tmp_path / "README.md", tmp_path / "docs" / "benchmarks" / "speed.md"
    page.parent.mkdir(parents=True)
    readme.write_text("# digitrec\n")
    page.write_text("# Speed\n\n<!-- bench:speed -->\nold\n<!-- /bench:speed -->\n\nafter\n")
    monkeypatch.setattr(common, "README", readme)
    monkeypatch.setattr(common, "DOCS", tmp_path / "docs")

    common.write_into_readme("speed", "| a |\n| --- |\n| 1 |")

    assert page.read_text() == (
        "# Speed\n\n<!-- bench:speed -->\n| a |\n| --- |\n| 1 |\n<!-- /bench:speed -->\n\nafter\n"
    )
    assert readme.read_text() == "# digitrec\n"


def test_a_table_whose_block_is_on_no_page_or_two_is_refused(common, tmp_path, monkeypatch):
    readme, page = tmp_path / "README.md", tmp_path / "docs" / "speed.md"
    page.parent.mkdir()
    readme.write_text("# digitrec\n")
    page.write_text("# Speed\n")
    monkeypatch.setattr(common, "README", readme)
    monkeypatch.setattr(common, "DOCS", tmp_path / "docs")

    with pytest.raises(SystemExit, match=r"no page holds a <!-- bench:speed --> .*docs/benchmarks"):
        common.write_into_readme("speed", "new")

    block = "<!-- bench:speed -->\nold\n<!-- /bench:speed -->\n"
    readme.write_text(block)
    page.write_text(block)
    with pytest.raises(SystemExit, match="is in 2 pages"):
        common.write_into_readme("speed", "new")
    assert readme.read_text() == page.read_text() == block
