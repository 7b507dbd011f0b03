"""The command line's parser: no prefix matching, the nearest command, flag or choice suggested,
global flags after the command, and the former name of an export format."""

from __future__ import annotations

import pytest

from digitrec.cli import build_parser

COMMAND_NAMES = tuple(build_parser().commands.choices)  # as typed: train-lines


def parse_error(argv: list[str], capsys) -> str:
    """The error argparse prints for ``argv`` (it exits with status 2)."""
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(argv)
    assert exited.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["trian"], "invalid choice: 'trian'"),
        (["train", "--epoch", "1"], "digitrec train: error: unrecognized arguments: --epoch 1"),
        (["evaluate", "default", "--jsn"], "unrecognized arguments: --jsn"),
        (["tune", "--trails", "3"], "unrecognized arguments: --trails 3"),
        (["export", "RUN", "--format", "onx"], "invalid choice: 'onx'"),
        (["train", "--batchsize=8"], "unrecognized arguments: --batchsize=8"),
    ],
)
def test_a_typo_is_an_error_that_suggests_the_nearest_name(argv, error, capsys):
    suggested = {
        "trian": "'train'",
        "--epoch": "--epochs",
        "--jsn": "--json",
        "--trails": "--trials",
        "onx": "'onnx'",
        "--batchsize=8": "--batch-size",
    }
    message = parse_error(argv, capsys)
    assert error in message
    typo = next(word for word in argv if word in suggested)
    assert message.endswith(f"did you mean {suggested[typo]}?"), message


def test_prefixes_of_flags_are_not_taken_for_them(capsys):
    parser = build_parser()
    assert parser.parse_args(["train", "--epochs", "1"]).epochs == 1
    assert "unrecognized arguments: --epoch" in parse_error(["train", "--epoch", "1"], capsys)
    assert "unrecognized arguments: --verb" in parse_error(["--verb", "data"], capsys)


def test_several_typos_each_get_their_suggestion_and_unlike_words_none(capsys):
    message = parse_error(["train", "--epoch", "1", "--batchsize", "8", "--zzz"], capsys)
    assert message.endswith("did you mean --epochs for --epoch, --batch-size for --batchsize?")
    assert parse_error(["predict", "--qqqqqq"], capsys).endswith("unrecognized arguments: --qqqqqq")


@pytest.mark.parametrize("command", COMMAND_NAMES)
def test_verbose_works_before_and_after_every_command(command):
    required = {"export": ["RUN"], "train-lines": ["--out", "RUN"]}.get(command, [])
    parser = build_parser()
    assert parser.parse_args([command, *required]).verbose is False
    assert parser.parse_args(["--verbose", command, *required]).verbose is True
    assert parser.parse_args([command, *required, "--verbose"]).verbose is True


def test_version_works_after_a_command_too(capsys):
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["train", "--version"])
    assert exited.value.code == 0 and capsys.readouterr().out.startswith("digitrec ")


def test_tflite_is_refused_with_the_name_to_use(capsys):
    message = parse_error(["export", "RUN", "--format", "tflite"], capsys)
    assert "TensorFlow Lite is now called LiteRT: the format is 'litert', not 'tflite'" in message


def test_the_api_names_the_new_format_too(tmp_path):
    from digitrec.errors import ModelError
    from digitrec.training.export import export_model

    with pytest.raises(ModelError, match="the format is 'litert', not 'tflite'"):
        export_model(tmp_path / "model.keras", "tflite")
