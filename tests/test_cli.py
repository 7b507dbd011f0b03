"""The command line as a whole: version, help for every subcommand, TensorFlow kept quiet."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from digitrec import __version__
from digitrec.cli import build_parser

COMMAND_NAMES = tuple(build_parser().commands.choices)  # as typed: train-lines


def test_version_is_printed():
    result = subprocess.run(
        [sys.executable, "-m", "digitrec", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stdout.strip() == f"digitrec {__version__}"


@pytest.mark.parametrize("command", COMMAND_NAMES)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([command, "--help"])
    assert exited.value.code == 0
    assert f"usage: digitrec {command}" in capsys.readouterr().out


def run_python(code: str) -> subprocess.CompletedProcess:
    """``python -c CODE`` in a new process, its output captured as text."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def modules_loaded_by(statement: str, watched: list[str]) -> list[str]:
    """Which of the ``watched`` modules a new Python process has loaded after ``statement``."""
    loaded = f"[m for m in {watched!r} if m in sys.modules]"
    result = run_python(f"import json, sys\n{statement}\nprint(json.dumps({loaded}))")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_public_api_imports_lazily():
    assert modules_loaded_by("import digitrec", ["tensorflow", "keras"]) == []


def test_public_api_names_resolve():
    import digitrec

    assert [name for name in digitrec.__all__ if not hasattr(digitrec, name)] == []


def test_export_and_model_loading_do_not_import_evaluation():
    # Keras itself imports scikit-learn when it loads (keras.src.wrappers), so only our imports
    # can be checked: neither digitrec.training.evaluate nor its scikit-learn and matplotlib.
    statement = "import digitrec.training.export, digitrec.training.saved_models"
    watched = ["digitrec.training.evaluate", "sklearn", "matplotlib"]
    assert modules_loaded_by(statement, watched) == []


def test_a_command_whose_extra_is_missing_names_the_extra_to_install():
    code = (
        "import sys\n"
        "sys.modules['keras'] = None  # as if the [train] extra were not installed\n"
        "from digitrec.cli import main\n"
        "sys.exit(main(['train', '--epochs', '1']))\n"
    )
    result = run_python(code)
    assert result.returncode == 2
    assert "pip install 'digitrec[train]'" in result.stderr and "Traceback" not in result.stderr


# What TensorFlow 2.21 prints on its own: absl's warning and the oneDNN notice while it loads
# (twice), an E0000 line from tf.data during training; NumPy's FutureWarning through tf2onnx
# (tests/test_export.py covers that one).
TENSORFLOW_NOISE = (
    "All log messages before absl::InitializeLog() is called are written to STDERR",
    "oneDNN custom operations are on",
    "E0000 ",
)


def run_digitrec(*args: str, cwd=None) -> subprocess.CompletedProcess:
    """``digitrec ARGS`` in a new process, with TensorFlow's logging as a user has it: no log
    level set, and oneDNN announced whatever this machine's CPU (its notice is the test's
    witness)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["TF_ENABLE_ONEDNN_OPTS"] = "1"
    command = [sys.executable, "-m", "digitrec", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd)


def test_tensorflow_log_lines_are_hidden_unless_verbose(tmp_path):
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"PK\x03\x04 not really a zip")  # TensorFlow loads, then the model fails
    quiet = run_digitrec("evaluate", str(broken))
    verbose = run_digitrec("--verbose", "evaluate", str(broken))
    for result in (quiet, verbose):
        assert result.returncode == 2
        assert "digitrec evaluate: error:" in result.stderr and "cannot load model" in result.stderr
    assert not [line for line in TENSORFLOW_NOISE if line in quiet.stderr], quiet.stderr
    assert TENSORFLOW_NOISE[0] in verbose.stderr and TENSORFLOW_NOISE[1] in verbose.stderr


@pytest.mark.slow
def test_tune_prints_no_tensorflow_log_lines(mnist_dir, tmp_path):
    result = run_digitrec(
        *("tune", "--trials", "1", "--subset", "300", "--epochs", "1", "--quiet"),
        *("--out", str(tmp_path / "study"), "--data-dir", str(mnist_dir)),
    )
    assert result.returncode == 0, result.stderr
    assert not [line for line in TENSORFLOW_NOISE if line in result.stderr], result.stderr


def test_quiet_mode_filters_only_the_noise_written_while_tensorflow_loads(tmp_path):
    code = (
        "import os, sys\n"
        "import digitrec.quiet as quiet\n"
        "quiet.quiet_tensorflow()\n"
        "with quiet.filtered_stderr():\n"
        "    os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called are "
        "written to STDERR\\n')\n"
        "    os.write(2, b'I0000 00:00:1795905490.940392    6642 port.cc:153] oneDNN notice\\n')\n"
        "    os.write(2, b'W0000 00:00:1795905490.940392    6642 port.cc:99] a real warning\\n')\n"
        "    print('a line of our own', file=sys.stderr)\n"
        "import numpy\n"
        "hasattr(numpy, 'object')  # the FutureWarning tf2onnx triggers\n"
    )
    result = run_python(code)
    assert result.returncode == 0
    assert result.stderr.splitlines() == [
        "W0000 00:00:1795905490.940392    6642 port.cc:99] a real warning",
        "a line of our own",
    ]


def test_verbose_is_documented_in_help(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    assert "--verbose" in capsys.readouterr().out


def fresh_main(argv: list[str], cwd) -> tuple[int, bool, str]:
    """``digitrec.cli.main(argv)`` in a new process: its exit status, whether TensorFlow was
    loaded by then, and what it wrote on stderr."""
    code = (
        "import json, sys\n"
        "from digitrec.cli import main\n"
        "try:\n"
        "    status = main(sys.argv[1:])\n"
        "except SystemExit as exited:\n"
        "    status = exited.code\n"
        "print(json.dumps([status, 'tensorflow' in sys.modules]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=cwd
    )
    status, loaded = json.loads(result.stdout.splitlines()[-1])
    return status, loaded, result.stderr


BAD_ARGUMENTS = {
    "a flag's typo": (["train", "--epoch", "1"], "did you mean --epochs?"),
    "a run directory in use": (["train", "--out", "{used}"], "choose another --out"),
    "a run to resume that is none": (["train", "--resume", "{empty}"], "no run.json"),
    "a missing settings file": (["train", "--params", "{missing}.json"], "cannot read --params"),
    "a missing model to start from": (["train", "--init", "{missing}"], "no such file or folder"),
    "a missing folder of images": (["train", "--images", "{missing}"], "no such folder"),
    "a missing data folder": (["train", "--data-dir", "{missing}"], "no such folder"),
    "a missing model": (["evaluate", "{missing}"], "no model found"),
    "a model's images missing": (["evaluate", "{fake}", "--images", "{missing}"], "no such folder"),
    "strings without labels": (["evaluate", "default", "--strings", "{empty}"], "labels.csv"),
    "a missing model to export": (["export", "{missing}"], "no model found"),
    "an export onto a file": (["export", "{fake}", "--out", "{used}/notes.txt"], "notes.txt"),
    "a renamed format": (["export", "{fake}", "--format", "tflite"], "the format is 'litert'"),
    "no trials": (["tune", "--trials", "0"], "--trials and --workers must be at least 1"),
    "a study name with a path": (["tune", "--study", "../x"], "give a plain name"),
    "a missing search space": (["tune", "--space", "{missing}.yaml"], "cannot read"),
}


@pytest.mark.parametrize("case", BAD_ARGUMENTS)
def test_bad_arguments_and_paths_are_refused_before_tensorflow_loads(case, tmp_path):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    (tmp_path / "empty").mkdir()
    (tmp_path / "fake.keras").write_bytes(b"PK\x03\x04 loading it would load TensorFlow")
    paths = {name: tmp_path / name for name in ("used", "empty", "missing")}
    argv, message = BAD_ARGUMENTS[case]
    argv = [word.format(**paths, fake=tmp_path / "fake.keras") for word in argv]
    status, tensorflow_loaded, stderr = fresh_main(argv, cwd=tmp_path)
    assert status == 2 and message in stderr, stderr
    assert not tensorflow_loaded
