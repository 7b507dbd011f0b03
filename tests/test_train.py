"""Training runs: run directories, repeatability, resuming after a kill, and the CLI."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from digitrec.data import DATASETS
from digitrec.errors import DigitrecError


def tiny_config(**overrides):
    from digitrec.training.config import resolve_config

    settings = {"dataset": "tiny", "epochs": 2, "batch_size": 16, "val_size": 10}
    return resolve_config("lenet5", **{**settings, **overrides})


def test_run_directory_holds_model_metrics_and_settings(tiny_registered, tmp_path):
    from digitrec.training.train import train

    run_dir = train(tiny_config(), tmp_path / "run", tiny_registered, verbose=False)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    run = json.loads((run_dir / "run.json").read_text())
    assert (run_dir / "model.keras").is_file()
    assert {"test_accuracy", "test_loss", "train_seconds", "history", "report"} <= set(metrics)
    assert len(metrics["history"]["loss"]) == 2 and "val_accuracy" in metrics["history"]
    assert run["config"]["batch_size"] == 16 and run["config"]["seed"] == 0
    assert set(run["dataset"]["checksums"]) == {f.name for f in DATASETS["tiny"].files.values()}
    assert {"tensorflow", "keras", "numpy", "python"} <= set(run["versions"])
    assert not list((run_dir / "checkpoints").glob("*.keras"))
    assert not [p for p in run_dir.rglob("*") if ".tmp-" in p.name]


def test_same_seed_gives_the_same_model(tiny_registered, tmp_path):
    import keras

    from digitrec.training.train import train

    weights = []
    for name in ("a", "b"):
        run_dir = train(tiny_config(seed=7), tmp_path / name, tiny_registered, verbose=False)
        weights.append(keras.saving.load_model(run_dir / "model.keras").get_weights())
    for first, second in zip(*weights, strict=True):
        np.testing.assert_array_equal(first, second)


def test_existing_run_is_not_overwritten_and_complete_run_not_resumed(tiny_registered, tmp_path):
    from digitrec.training.train import resume, train

    run_dir = train(tiny_config(epochs=1), tmp_path / "run", tiny_registered, verbose=False)
    with pytest.raises(DigitrecError, match="already holds a run"):
        train(tiny_config(), run_dir, tiny_registered, verbose=False)
    with pytest.raises(DigitrecError, match="already complete"):
        resume(run_dir, tiny_registered, verbose=False)
    with pytest.raises(DigitrecError, match="not a run directory"):
        resume(tmp_path / "nothing", tiny_registered, verbose=False)


def test_resume_continues_from_the_last_completed_epoch(tiny_registered, tmp_path):
    """A run whose process died after epoch 1 of 3 finishes all 3 epochs on resume."""
    from digitrec.training.train import resume, train

    run_dir = tmp_path / "run"
    train(tiny_config(epochs=1), run_dir, tiny_registered, verbose=False)
    # Turn the finished 1-epoch run back into a 3-epoch run stopped after epoch 1.
    run = json.loads((run_dir / "run.json").read_text())
    run["config"]["epochs"] = 3
    (run_dir / "run.json").write_text(json.dumps(run))
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    os.replace(run_dir / "model.keras", run_dir / "checkpoints" / "epoch-001.keras")
    history = json.loads((run_dir / "metrics.json").read_text())["history"]
    (run_dir / "state.json").write_text(
        json.dumps({"epoch": 1, "checkpoint": "checkpoints/epoch-001.keras", "history": history})
    )
    (run_dir / "metrics.json").unlink()
    resume(run_dir, tiny_registered, verbose=False)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 3
    assert len(metrics["history"]["loss"]) == 3
    assert metrics["history"]["loss"][0] == history["loss"][0]


def digitrec(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "digitrec", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@pytest.mark.slow
def test_one_epoch_of_lenet5_reaches_97_percent(mnist_dir, tmp_path):
    process = digitrec(
        "train",
        "--epochs=1",
        "--batch-size=32",
        "--learning-rate=0.002",
        "--quiet",
        f"--out={tmp_path / 'run'}",
        f"--data-dir={mnist_dir}",
    )
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.97
    assert "test accuracy" in out and "report" in out


@pytest.mark.slow
def test_killed_run_resumes_and_completes(mnist_dir, tmp_path):
    run_dir = tmp_path / "run"
    process = digitrec(
        "train", "--epochs=3", "--quiet", f"--out={run_dir}", f"--data-dir={mnist_dir}"
    )
    deadline = time.monotonic() + 300
    while not (run_dir / "state.json").exists():
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    state = json.loads((run_dir / "state.json").read_text())
    assert 1 <= state["epoch"] < 3 and not (run_dir / "metrics.json").exists()
    resumed = digitrec("train", f"--resume={run_dir}", "--quiet", f"--data-dir={mnist_dir}")
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 3 and len(metrics["history"]["loss"]) == 3
    assert metrics["test_accuracy"] > 0.97


def test_unknown_model_is_a_clear_cli_error(tmp_path):
    process = digitrec("train", "--model", "nope", f"--out={tmp_path / 'run'}")
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2
    assert "--model: invalid choice: 'nope'" in err and "'lenet5'" in err
    assert "Traceback" not in err and not (tmp_path / "run").exists()


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_params_file_settings_and_model_apply_and_flags_win(suffix, tiny_registered, tmp_path):
    import yaml

    from digitrec.cli import main

    params = tmp_path / f"params{suffix}"
    settings = {"model": "mlp", "epochs": 1, "batch_size": 8, "val_size": 10}
    params.write_text(json.dumps(settings) if suffix == ".json" else yaml.safe_dump(settings))
    out = tmp_path / "run"
    argv = ["train", "--params", str(params), "--batch-size", "16", "--quiet"]
    assert (
        main([*argv, "--dataset", "tiny", "--data-dir", str(tiny_registered), "--out", str(out)])
        == 0
    )
    config = json.loads((out / "run.json").read_text())["config"]
    assert (config["model"], config["epochs"], config["batch_size"]) == ("mlp", 1, 16)


def test_user_style_mix_replaces_a_seeded_fraction_by_renders_of_the_same_digits():
    from synthetic import font_digit

    from digitrec.data import as_model_input
    from digitrec.training.train import user_style_mix

    images = np.stack([font_digit(d % 10) for d in range(40)])
    clean = as_model_input(images)
    np.testing.assert_array_equal(user_style_mix(images, 0.0, seed=0), clean)
    mixed = user_style_mix(images, 0.5, seed=0)
    changed = np.abs(mixed - clean).reshape(len(images), -1).max(axis=1) > 0.05
    assert 10 <= changed.sum() <= 30
    assert mixed.shape == clean.shape and mixed.dtype == np.float32
    assert mixed.min() >= 0 and mixed.max() <= 1
    np.testing.assert_array_equal(user_style_mix(images, 0.5, seed=0), mixed)
    assert not np.array_equal(user_style_mix(images, 0.5, seed=1), mixed)


def test_user_style_training_renders_training_images_only(tiny_registered, tmp_path, monkeypatch):
    from digitrec.cli import main
    from digitrec.data import load_dataset, split_validation
    from digitrec.synth import user_digits as synthesis

    rendered = []
    render = synthesis.user_style_inputs

    def spy(images, *args, **kwargs):
        rendered.append(np.array(images))
        return render(images, *args, **kwargs)

    monkeypatch.setattr(synthesis, "user_style_inputs", spy)
    out = tmp_path / "run"
    argv = ["train", "--model", "mlp", "--epochs", "1", "--val-size", "10", "--user-style", "0.5"]
    assert (
        main(
            [
                *argv,
                "--dataset",
                "tiny",
                "--data-dir",
                str(tiny_registered),
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    assert json.loads((out / "run.json").read_text())["config"]["user_style"] == 0.5
    data = load_dataset("tiny", tiny_registered, progress=False)
    x_train, _, x_val, _ = split_validation(data.train_images, data.train_labels, 10)
    (images,) = rendered
    assert 10 <= len(images) <= 40  # about half of the 50 training images
    training = {image.tobytes() for image in x_train}
    validation = {image.tobytes() for image in x_val}
    assert all(image.tobytes() in training for image in images)
    assert not any(image.tobytes() in validation for image in images)


def test_a_bfloat16_run_trains_in_bfloat16_and_saves_a_float32_model(tiny_registered, tmp_path):
    import keras

    from digitrec.training.callbacks import EpochCheckpoint
    from digitrec.training.models import computes_in_float32
    from digitrec.training.train import train

    trained_in = []
    save = EpochCheckpoint.on_epoch_end

    def record_policy(self, epoch, logs=None):
        trained_in.append(self.model.layers[0].dtype_policy.name)
        save(self, epoch, logs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(EpochCheckpoint, "on_epoch_end", record_policy)
        run_dir = train(
            tiny_config(precision="bfloat16"), tmp_path / "run", tiny_registered, verbose=False
        )
    assert trained_in == ["mixed_bfloat16"] * 2
    model = keras.saving.load_model(run_dir / "model.keras")
    assert computes_in_float32(model)
    assert keras.mixed_precision.global_policy().name == "float32"  # as it was before


class Killed(Exception):
    """Stands for the process being killed."""


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_a_resumed_run_trains_exactly_as_an_uninterrupted_one(
    precision, tiny_registered, tmp_path, monkeypatch
):
    """Data order, augmentation, dropout and the schedule's step all carry on across a resume."""
    import keras

    from digitrec.training.callbacks import EpochCheckpoint
    from digitrec.training.train import resume, train

    config = tiny_config(
        schedule="onecycle", augment=1.0, elastic=1.0, steps_per_execution=3, precision=precision
    )
    whole = train(config, tmp_path / "whole", tiny_registered, verbose=False)

    save = EpochCheckpoint.on_epoch_end

    def killed_after_the_first_checkpoint(self, epoch, logs=None):
        save(self, epoch, logs)
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(EpochCheckpoint, "on_epoch_end", killed_after_the_first_checkpoint)
        with pytest.raises(Killed):
            train(config, tmp_path / "resumed", tiny_registered, verbose=False)
    keras.backend.clear_session()
    resumed = resume(tmp_path / "resumed", tiny_registered, verbose=False)

    expected = keras.saving.load_model(whole / "model.keras").get_weights()
    for got, want in zip(
        keras.saving.load_model(resumed / "model.keras").get_weights(), expected, strict=True
    ):
        np.testing.assert_array_equal(got, want)


def test_a_run_failing_before_its_first_checkpoint_takes_back_only_what_it_added(
    tiny_registered, tmp_path, monkeypatch
):
    from digitrec.training import train as train_module

    def broken_fit(*args, **kwargs):
        raise RuntimeError("out of memory")

    out = tmp_path / "empty"
    out.mkdir()
    with monkeypatch.context() as patch:
        patch.setattr(train_module, "fit", broken_fit)
        for run_dir in (out, tmp_path / "new" / "run"):
            with pytest.raises(RuntimeError, match="out of memory"):
                train_module.train(tiny_config(), run_dir, tiny_registered, verbose=False)
    assert out.is_dir() and not any(out.iterdir())  # run.json is gone, the folder kept
    assert not (tmp_path / "new").exists()
    train_module.train(tiny_config(epochs=1), out, tiny_registered, verbose=False)  # reusable
    assert (out / "metrics.json").is_file()


def tiny_cli(tiny_registered) -> list[str]:
    """The options of a quick ``digitrec train`` on the tiny dataset."""
    return ["--dataset", "tiny", "--val-size", "10", "--data-dir", str(tiny_registered), "--quiet"]


def test_a_folder_holding_anything_is_refused_as_a_new_runs_directory_and_left_as_it_was(
    tiny_registered, tmp_path, capsys
):
    from digitrec.cli import main

    out = tmp_path / "mine"
    out.mkdir()
    for name in ("model.keras", "report.md", "metrics.json", "notes.txt"):
        (out / name).write_text(f"the user's {name}")
    assert main(["train", *tiny_cli(tiny_registered), "--out", str(out)]) == 2
    assert (
        f"{out} holds files that are not part of a digitrec run (metrics.json, model.keras, "
        "notes.txt and 1 more); a run starts in a new or empty folder"
    ) in capsys.readouterr().err
    assert {p.name: p.read_text() for p in out.iterdir()} == {
        name: f"the user's {name}"
        for name in ("model.keras", "report.md", "metrics.json", "notes.txt")
    }


def stopped_run(run_dir, state: str | None) -> None:
    """A run directory as a run stopped after its first epoch leaves it, with ``state`` as its
    ``state.json`` (no checkpoint is written)."""
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"config": tiny_config().to_dict()}))
    if state is not None:
        (run_dir / "state.json").write_text(state)


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ('{"epoch": 1, "checkp', "cannot read the run's state"),
        ('{"epoch": 1}', "is not a run's state"),
        (
            json.dumps({"epoch": 1, "checkpoint": "../../elsewhere.keras", "history": {}}),
            "is not a run's state",
        ),
        (
            json.dumps({"epoch": 1, "checkpoint": "checkpoints/epoch-001.keras", "history": {}}),
            "checkpoints/epoch-001.keras that {run}/state.json names is missing; restore it",
        ),
    ],
    ids=["not-json", "keys-missing", "checkpoint-elsewhere", "checkpoint-missing"],
)
def test_resuming_a_run_whose_state_is_damaged_or_checkpoint_missing_is_a_clear_error(
    state, message, tiny_registered, tmp_path, capsys
):
    from digitrec.cli import main

    run_dir = tmp_path / "run"
    stopped_run(run_dir, state)
    argv = ["train", "--resume", str(run_dir), "--data-dir", str(tiny_registered), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message.format(run=run_dir) in err and "Traceback" not in err
    assert f"remove {run_dir / 'state.json'} to train the run again from its first epoch" in err
    assert (run_dir / "state.json").read_text() == state


def test_an_out_that_is_a_file_or_cannot_be_written_is_a_clear_error(
    tiny_registered, tmp_path, monkeypatch, capsys
):
    from digitrec.cli import main
    from digitrec.training import rundir

    file = tmp_path / "file"
    file.write_text("")
    data = ["--dataset", "tiny", "--val-size", "10", "--data-dir", str(tiny_registered), "--quiet"]
    for out, message in [
        (file, f"cannot make run directory {file}: {file} is a file"),
        (file / "run", f"cannot make run directory {file / 'run'}: {file} is a file"),
    ]:
        assert main(["train", *data, "--out", str(out)]) == 2
        assert f"digitrec train: error: {message}" in capsys.readouterr().err
    with monkeypatch.context() as patch:  # as a user without write permission sees it
        patch.setattr(rundir.os, "access", lambda path, mode: False)
        assert main(["train", *data, "--out", str(tmp_path / "run")]) == 2
    assert f"{tmp_path} is not writable" in capsys.readouterr().err

    def denied(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    with monkeypatch.context() as patch:  # a read-only file system passes the access check
        patch.setattr(rundir.Path, "mkdir", denied)
        assert main(["train", *data, "--out", str(tmp_path / "run")]) == 2
    assert "cannot make run directory" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_tensorboard_logs_are_written(tiny_registered, tmp_path):
    from digitrec.training.train import train

    run_dir = train(
        tiny_config(epochs=1), tmp_path / "run", tiny_registered, verbose=False, tensorboard=True
    )
    assert list((run_dir / "logs").rglob("events.out.tfevents.*"))


def test_progress_stops_at_the_last_step_and_is_plain_lines_off_a_terminal(
    tiny_registered, tmp_path, capsys
):
    from digitrec.training.callbacks import Progress
    from digitrec.training.train import train

    progress = Progress()
    progress.set_params({"verbose": 0, "epochs": 2, "steps": 469})
    progress.on_epoch_begin(0)
    progress.on_train_batch_end(479)  # the end of an execution of 32 batches
    assert progress.seen == 469
    capsys.readouterr()

    train(tiny_config(steps_per_execution=3), tmp_path / "run", tiny_registered, verbose=True)
    lines = capsys.readouterr().out.splitlines()
    steps = [line for line in lines if re.match(r"\d+/\d+ - ", line)]
    assert [line.split(" ")[0] for line in steps] == ["4/4", "4/4"]  # 50 images, batches of 16
    assert lines.index("Epoch 1/2") < lines.index("Epoch 2/2")
    assert not any("\r" in line or "\x1b" in line or "\b" in line for line in lines)


def test_the_training_pipeline_makes_iterators_without_autotuning_or_rewrites():
    """Keras makes a new iterator every epoch; these would each cost seconds at some epochs."""
    from digitrec.training.train import training_dataset

    images = np.zeros((20, 28, 28), np.uint8)
    dataset, _ = training_dataset(images, np.arange(20) % 10, tiny_config(), 10)
    options = dataset.options()
    assert options.autotune.enabled is False
    assert options.experimental_optimization.apply_default_optimizations is False
