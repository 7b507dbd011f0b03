"""The sample images in examples/ and the README's quick start: every command and snippet of the
quick start prints exactly the output the README shows for it."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
MAX_EXAMPLE_BYTES = 100_000
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def quick_start() -> list[tuple[str, str]]:
    """The fenced blocks of the README's quick start: (language, text) in order."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    return [(match[1], match[2]) for match in FENCE.finditer(section)]


def console_examples() -> list[tuple[str, list[str]]]:
    """Each ``$ command`` of the quick start's console blocks with the lines shown after it."""
    examples: list[tuple[str, list[str]]] = []
    for language, text in quick_start():
        if language != "console":
            continue
        for line in text.splitlines():
            if line.startswith("$ "):
                examples.append((line[2:], []))
            else:
                examples[-1][1].append(line)
    return examples


def python_examples() -> list[tuple[str, list[str]]]:
    """Each python block of the quick start with the text block that follows it (its output)."""
    blocks = quick_start()
    return [
        (code, output.splitlines())
        for (language, code), (next_language, output) in pairwise(blocks)
        if language == "python" and next_language == "text"
    ]


def printed(command: list[str]) -> list[str]:
    """What ``command`` prints, run from the repository root, line by line."""
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return [line.rstrip() for line in result.stdout.splitlines()]


def test_the_quick_start_reads_every_example_and_each_is_small():
    commands = " ".join(command for command, _ in console_examples())
    for image in sorted(EXAMPLES.iterdir()):
        assert f"examples/{image.name}" in commands, f"the quick start does not read {image.name}"
        assert image.stat().st_size < MAX_EXAMPLE_BYTES, f"{image.name} is too large"
    assert len(list(EXAMPLES.iterdir())) == 4


@pytest.mark.parametrize("command, shown", console_examples(), ids=lambda value: str(value)[:40])
def test_a_quick_start_command_prints_what_the_readme_shows(command, shown):
    program, *arguments = shlex.split(command)
    assert program == "digitrec"
    assert printed([sys.executable, "-m", "digitrec", *arguments]) == [
        line.rstrip() for line in shown
    ]


@pytest.mark.parametrize("code, shown", python_examples(), ids=lambda value: str(value)[:40])
def test_a_quick_start_snippet_prints_what_the_readme_shows(code, shown):
    assert printed([sys.executable, "-c", code]) == shown


def test_the_quick_start_has_a_command_and_a_snippet_to_check():
    assert console_examples() and python_examples()
