"""The command line as a whole: version, help for every subcommand."""

from __future__ import annotations

import subprocess
import sys

import pytest

from digitrec import __version__
from digitrec.cli import COMMANDS, build_parser


def test_version_is_printed():
    result = subprocess.run(
        [sys.executable, "-m", "digitrec", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stdout.strip() == f"digitrec {__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([command, "--help"])
    assert exited.value.code == 0
    assert f"usage: digitrec {command}" in capsys.readouterr().out


def test_public_api_names_resolve_and_import_lazily():
    code = (
        "import sys, digitrec\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
        "missing = [n for n in digitrec.__all__ if not hasattr(digitrec, n)]\n"
        "assert not missing, missing\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_a_command_whose_extra_is_missing_names_the_extra_to_install():
    code = (
        "import sys\n"
        "sys.modules['keras'] = None  # as if the [train] extra were not installed\n"
        "from digitrec.cli import main\n"
        "sys.exit(main(['train', '--epochs', '1']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 2
    assert "pip install 'digitrec[train]'" in result.stderr and "Traceback" not in result.stderr
