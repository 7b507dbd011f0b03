"""Training settings: one description per setting, checked wherever a config is made (Python,
command line, --params files, run.json), before anything is written."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import FrozenInstanceError

import numpy as np
import pytest

from digitrec.errors import DigitrecError
from digitrec.training.config import TrainConfig, check_split, read_settings, resolve_config
from digitrec.training.models import MODELS


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"epochs": 0}, r"epochs \(--epochs\) must be at least 1, not 0"),
        ({"epochs": -1}, r"epochs \(--epochs\) must be at least 1, not -1"),
        ({"epochs": 2.5}, r"epochs \(--epochs\) must be a whole number, not 2.5"),
        ({"epochs": True}, r"epochs \(--epochs\) must be a whole number, not True"),
        ({"epochs": "3"}, r"epochs \(--epochs\) must be a whole number, not '3'"),
        ({"batch_size": 0}, r"batch_size \(--batch-size\) must be at least 1"),
        (
            {"learning_rate": -1},
            r"learning_rate \(--learning-rate\) must be a finite number above 0, not -1.0",
        ),
        (
            {"learning_rate": 0.0},
            r"learning_rate \(--learning-rate\) must be a finite number above 0",
        ),
        (
            {"learning_rate": float("nan")},
            r"--learning-rate\) must be a finite number above 0, not nan",
        ),
        (
            {"learning_rate": float("inf")},
            r"--learning-rate\) must be a finite number above 0, not inf",
        ),
        ({"seed": -1}, r"seed \(--seed\) must be from 0 to 4294967295, not -1"),
        ({"seed": 2**32}, r"seed \(--seed\) must be from 0 to 4294967295"),
        ({"val_size": -5}, r"val_size \(--val-size\) must be at least 0, not -5"),
        (
            {"label_smoothing": 1.0},
            r"label_smoothing \(--label-smoothing\) must be a finite number at least 0 and below 1",
        ),
        (
            {"label_smoothing": -0.1},
            r"--label-smoothing\) must be a finite number at least 0 and below 1, not -0.1",
        ),
        ({"schedule": "linear"}, r"--schedule\) must be one of constant, cosine, onecycle"),
        ({"warmup": 1.5}, r"warmup \(--warmup\) must be a finite number from 0 to 1, not 1.5"),
        ({"warmup": -0.1}, r"warmup \(--warmup\) must be a finite number from 0 to 1"),
        (
            {"augment": -1.0},
            r"augment \(--augment\) must be a finite number from 0 to 10, not -1.0",
        ),
        ({"augment": 11}, r"augment \(--augment\) must be a finite number from 0 to 10, not 11.0"),
        ({"elastic": -0.5}, r"elastic \(--elastic\) must be a finite number at least 0, not -0.5"),
        (
            {"user_style": 1.5},
            r"user_style \(--user-style\) must be a finite number from 0 to 1, not 1.5",
        ),
        ({"ema": 1.0}, r"ema \(--ema\) must be a finite number at least 0 and below 1, not 1.0"),
        ({"ema": -0.5}, r"ema \(--ema\) must be a finite number at least 0 and below 1"),
        ({"ensemble": 0}, r"ensemble \(--ensemble\) must be at least 1, not 0"),
        ({"steps_per_execution": 0}, r"--steps-per-execution\) must be at least 1, not 0"),
        ({"tta": 1}, r"tta \(--tta\) must be true or false, not 1"),
        ({"dataset": 5}, r"dataset \(--dataset\) must be text, not 5"),
        ({"model_args": [1]}, r"model_args \(--model-args\) must be a mapping"),
        ({"member_args": {"kernel": 5}}, r"member_args \(--member-args\) must be a list"),
        ({"member_args": [{}, 5]}, r"member_args \(--member-args\) must be a list of mappings"),
        ({"model_args": {"width": 8}}, r"model 'lenet5' takes no argument 'width'; its arg"),
        ({"member_args": [{}, {"kernel": 5}]}, r"member_args\[1\] \(--member-args\): model"),
        ({"seed": 2**32 - 1, "ensemble": 2}, r"the ensemble's last seed"),
    ],
)
def test_a_bad_setting_is_refused_naming_the_setting_and_its_flag(settings, message):
    with pytest.raises(DigitrecError, match=message):
        resolve_config("lenet5", **settings)


def test_unknown_models_and_settings_are_refused_with_the_known_ones():
    with pytest.raises(DigitrecError, match="unknown model 'nope'; known: lenet5, mlp"):
        resolve_config("nope")
    with pytest.raises(DigitrecError, match=r"unknown training settings: epoch; known: model, "):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(DigitrecError, match="must be a mapping"):
        TrainConfig.from_dict(["epochs", 3])


def test_model_args_are_checked_against_the_builder_signature(monkeypatch):
    from digitrec.training.models import ModelSpec

    def plain(num_classes: int = 10):
        raise AssertionError("never built here")

    def open_ended(num_classes: int = 10, **layers):
        raise AssertionError("never built here")

    monkeypatch.setitem(MODELS, "plain", ModelSpec("plain", plain, "no arguments"))
    monkeypatch.setitem(MODELS, "open", ModelSpec("open", open_ended, "any arguments"))
    with pytest.raises(
        DigitrecError, match="'plain' takes no argument 'width'; its arguments: none"
    ):
        resolve_config("plain", model_args={"width": 8})
    with pytest.raises(DigitrecError, match="'plain' takes no argument 'num_classes'"):
        resolve_config("plain", member_args=[{"num_classes": 3}])  # the dataset sets it
    assert resolve_config("open", model_args={"width": 8}).model_args == {"width": 8}
    with pytest.raises(DigitrecError, match="takes no argument 1; its arguments: any name"):
        resolve_config("open", model_args={1: 8})  # as YAML may read a key


def test_a_config_is_frozen_and_holds_plain_numbers():
    config = resolve_config("lenet5", epochs=np.int64(3), learning_rate=1, member_args=({},))
    assert type(config.epochs) is int and type(config.learning_rate) is float
    assert config.member_args == [{}]
    assert json.loads(json.dumps(config.to_dict()))["learning_rate"] == 1.0
    with pytest.raises(FrozenInstanceError):
        config.epochs = 0


def test_every_recipe_is_valid_and_keeps_a_validation_split():
    for name in MODELS:
        assert resolve_config(name).val_size == TrainConfig().val_size > 0, name
    assert resolve_config("fast", val_size=0).val_size == 0  # the user's explicit choice


def test_the_validation_split_must_leave_training_images():
    check_split(resolve_config("lenet5", val_size=59), train_images=60)
    with pytest.raises(DigitrecError, match=r"--val-size\) must be below the 60 training images"):
        check_split(resolve_config("lenet5", val_size=60), train_images=60)


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
def test_params_files_are_read_as_json_or_yaml_by_suffix(suffix, tmp_path):
    path = tmp_path / f"params{suffix}"
    if suffix == ".json":
        path.write_text('{"model": "mlp", "epochs": 3, "learning_rate": 0.001}')
    else:  # YAML reads 1e-3 (no dot) as text; it is read as on the command line
        path.write_text("model: mlp\nepochs: 3\nlearning_rate: 1e-3\n")
    assert read_settings(path) == {"model": "mlp", "epochs": 3, "learning_rate": 0.001}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("params.json", None, "cannot read --params .*params.json: No such file"),
        ("params.json", "{", "is not valid JSON"),
        ("params.yaml", "epochs: [1", "is not valid YAML"),
        ("params.json", "[1, 2]", "must hold a mapping of setting names to values, not a list"),
        ("params.yaml", "", "must hold a mapping of setting names to values, not nothing"),
        ("params.txt", "epochs: 1", r"unknown file type; use \.json, \.yaml, \.yml"),
        ("params.yaml", "epochs: many", "epochs must be a whole number, not 'many'"),
    ],
)
def test_a_bad_params_file_is_a_clear_error(name, content, message, tmp_path):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(DigitrecError, match=message):
        read_settings(path)


def test_a_params_file_that_is_not_text_is_a_clear_error(tmp_path):
    path = tmp_path / "params.json"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(DigitrecError, match="not text"):
        read_settings(path)


def test_help_lists_every_setting_with_its_default_and_every_model(capsys):
    from dataclasses import fields

    from digitrec.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for f in fields(TrainConfig):
        assert "--" + f.name.replace("_", "-") in text
    assert "--epochs EPOCHS passes over the training split (default: 10; >= 1)" in text
    assert "--schedule {constant,cosine,onecycle}" in text
    assert "--tta, --no-tta" in text
    for spec in MODELS.values():
        assert f"{spec.name} {spec.description}" in text
    assert 'epochs=2, batch_size=192, learning_rate=0.015, schedule="onecycle"' in text


def test_settings_and_models_load_without_tensorflow():
    """``train --help`` and making a config import no TensorFlow (nor Keras)."""
    imports = (
        "import sys; from digitrec.cli import build_parser; from digitrec.training import config; "
    )
    steps = "build_parser(); config.resolve_config('best', model_args={'kernel': 5}); "
    steps += "print(*sys.modules)"
    modules = subprocess.run(
        [sys.executable, "-c", imports + steps], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "digitrec.training.models" in modules
    assert "tensorflow" not in modules and "keras" not in modules


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--epochs", "0"], r"epochs \(--epochs\) must be at least 1, not 0"),
        (["--epochs", "-1"], r"epochs \(--epochs\) must be at least 1, not -1"),
        (
            ["--learning-rate", "-1"],
            r"learning_rate \(--learning-rate\) must be a finite number above 0, not -1.0",
        ),
        (["--learning-rate", "nan"], r"--learning-rate\) must be a finite number above 0, not nan"),
        (["--batch-size", "0"], r"batch_size \(--batch-size\) must be at least 1, not 0"),
        (
            ["--augment", "-1"],
            r"augment \(--augment\) must be a finite number from 0 to 10, not -1.0",
        ),
        (
            ["--elastic", "-1"],
            r"elastic \(--elastic\) must be a finite number at least 0, not -1.0",
        ),
        (["--model-args", '{"width": 8}'], r"model 'lenet5' takes no argument 'width'"),
        (["--val-size", "60"], r"--val-size\) must be below the 60 training images of tiny"),
    ],
)
def test_a_bad_flag_is_an_error_before_any_directory_is_made(
    flags, message, tiny_registered, tmp_path, capsys
):
    from digitrec.cli import main

    out = tmp_path / "runs" / "run"
    data = ["--dataset", "tiny", "--data-dir", str(tiny_registered)]
    assert main(["train", *flags, *data, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("digitrec train: error: ") and len(err.splitlines()) == 1
    assert re.search(message, err), err
    assert not (tmp_path / "runs").exists()


def test_a_bad_params_file_is_an_error_before_any_directory_is_made(tmp_path, capsys):
    from digitrec.cli import main

    params = tmp_path / "params.yaml"
    params.write_text("epochs: 3\nwarmup: 2\n")
    assert main(["train", "--params", str(params), "--out", str(tmp_path / "run")]) == 2
    assert (
        "warmup (--warmup) must be a finite number from 0 to 1, not 2.0" in capsys.readouterr().err
    )
    params.write_text("epoch: 3\n")
    assert main(["train", "--params", str(params), "--out", str(tmp_path / "run")]) == 2
    assert "unknown training settings: epoch" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_resume_refuses_settings_it_would_ignore(tmp_path, capsys):
    from digitrec.cli import main

    assert main(["train", "--resume", str(tmp_path), "--epochs", "5", "--out", "x"]) == 2
    err = capsys.readouterr().err
    assert "--resume continues a run with the settings in its run.json" in err
    assert "leave out --epochs, --out" in err


def test_a_run_json_with_bad_settings_is_refused_on_resume(tiny_registered, tmp_path):
    from digitrec.training.train import resume

    (tmp_path / "run.json").write_text(json.dumps({"config": {"model": "lenet5", "epochs": 0}}))
    with pytest.raises(DigitrecError, match=r"epochs \(--epochs\) must be at least 1"):
        resume(tmp_path, tiny_registered, verbose=False)
    (tmp_path / "run.json").write_text("{")
    with pytest.raises(DigitrecError, match=r"cannot read the settings in .*run.json"):
        resume(tmp_path, tiny_registered, verbose=False)
