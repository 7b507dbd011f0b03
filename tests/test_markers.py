"""Test selection: the ``mnist`` marker is given by the fixtures a test uses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def selected(marker: str, module: str) -> set[str]:
    """The test names in ``module`` that ``pytest -m marker`` would run (collection only)."""
    pytest = ["-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
    result = subprocess.run(
        [sys.executable, *pytest, "-m", marker, f"tests/{module}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode in (0, 5), result.stdout + result.stderr  # 5: none selected
    return {line.split("::")[1] for line in result.stdout.splitlines() if "::" in line}


def test_tests_reading_real_mnist_through_its_fixtures_are_marked_mnist():
    assert selected("mnist", "test_data.py") == {
        "test_real_mnist_verifies_with_official_counts",  # the mnist fixture
        "test_cli_data_info_lists_files_and_class_counts",  # the mnist_dir fixture
    }
    assert "test_reads_gzip_files_into_the_arrays_written" in selected("not mnist", "test_data.py")
