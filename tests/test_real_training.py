"""Training on real handwriting besides MNIST (``digitrec train --real cvl``): CVL's train part
joins the training split (oversampled by ``real_repeat``), its valid part is measured every
epoch beside MNIST's validation split, the run record and the model card name CVL with its
source, and a run without the sets fails clearly before any run directory is made."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import test_finetune

from digitrec.cli import main
from digitrec.data import DATASETS
from digitrec.errors import DataError, DigitrecError
from digitrec.realdigits import CVL_SOURCE, REAL_DIR_ENV
from digitrec.training.config import resolve_config

EPOCHS = 2
registered_tiny = test_finetune.tiny_data  # the fixture: the tiny random dataset, registered


def real_config(**settings):
    return resolve_config(
        "mlp",
        dataset="tiny",
        batch_size=64,
        model_args={"hidden": [64, 32]},
        real=["cvl"],
        **{"epochs": EPOCHS, "val_size": 10, **settings},
    )


@pytest.fixture(scope="module")
def real_run(registered_tiny, real_sets, tmp_path_factory) -> Path:
    """A small perceptron trained on the random images plus CVL's train part."""
    from digitrec.training.train import train

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(REAL_DIR_ENV, str(real_sets))
        return train(real_config(), tmp_path_factory.mktemp("real") / "run", registered_tiny, False)


def test_a_run_with_real_cvl_learns_digits_that_the_random_images_cannot_teach(real_run):
    metrics = json.loads((real_run / "metrics.json").read_text())
    # Measured 0.72 after 2 epochs: chance is 0.1, and the tiny random set teaches nothing.
    assert metrics["cvl_val_accuracy"] > 0.5


def test_every_epoch_records_mnist_style_and_cvl_validation_accuracy(real_run):
    history = json.loads((real_run / "metrics.json").read_text())["history"]
    assert len(history["val_accuracy"]) == len(history["cvl_val_accuracy"]) == EPOCHS
    assert history["cvl_val_accuracy"][-1] > history["cvl_val_accuracy"][0] - 0.05


def test_the_run_record_names_every_dataset_with_its_source(real_run):
    run = json.loads((real_run / "run.json").read_text())
    assert run["config"]["real"] == ["cvl"]
    assert run["real"] == [
        {"name": "cvl", "source": CVL_SOURCE, "train": 7000, "valid": 7000, "repeat": 1}
    ]
    assert "source" in run["dataset"]


def test_the_exported_model_card_names_cvl_its_source_and_the_command(
    real_run, real_sets, registered_tiny, monkeypatch
):
    from digitrec.training.export import export_model

    monkeypatch.setenv(REAL_DIR_ENV, str(real_sets))
    out = export_model(real_run, "onnx", real_run / "model.onnx", registered_tiny)
    card = out.with_name("model.card.md").read_text()
    assert f"- cvl: {CVL_SOURCE}." in card
    assert "| dataset | tiny + cvl |" in card
    assert "| validation accuracy, cvl valid |" in card
    assert "digitrec train --model mlp --dataset tiny" in card
    assert "--real cvl" in card


def test_real_training_images_join_the_training_split_before_the_validation_split():
    from digitrec.data import Dataset
    from digitrec.training.finetune import RealSet, with_real_training

    info = DATASETS["mnist"]
    images = np.arange(6, dtype=np.uint8)[:, None, None] * np.ones((1, 28, 28), np.uint8)
    data = Dataset(info, images, np.arange(6, dtype=np.uint8), images[:1], images[:1, 0, 0])
    real = RealSet("cvl", "", images[:2] + 100, np.array([7, 8], np.uint8), images, images[:, 0, 0])
    config = real_config(val_size=2, real_repeat=3)
    joined = with_real_training(data, [real], config)
    assert joined.train_labels.tolist() == [0, 1, 2, 3, 7, 8, 7, 8, 7, 8, 4, 5]
    assert joined.train_images[-2:, 0, 0].tolist() == [4, 5]  # validation: still MNIST's


def test_a_run_without_the_real_sets_fails_clearly_before_a_run_directory_is_made(
    registered_tiny, tmp_path, monkeypatch
):
    from digitrec.training.train import train

    monkeypatch.setenv(REAL_DIR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match=f"--real cvl: .*{REAL_DIR_ENV}"):
        train(real_config(), tmp_path / "run", registered_tiny, verbose=False)
    assert not (tmp_path / "run").exists()
    monkeypatch.setenv(REAL_DIR_ENV, str(tmp_path))  # a folder without cvl/
    with pytest.raises(DataError, match=r"--real cvl: .*cvl_train\.npz: no such file"):
        train(real_config(), tmp_path / "run", registered_tiny, verbose=False)


def test_the_command_refuses_real_without_the_sets_before_loading_tensorflow(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.delenv(REAL_DIR_ENV, raising=False)
    assert main(["train", "--real", "cvl", "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert "--real cvl" in error and REAL_DIR_ENV in error
    assert not (tmp_path / "run").exists()


def test_real_is_a_repeatable_flag_of_known_sets_and_real_repeat_needs_it():
    from digitrec.cli import build_parser
    from digitrec.cli.train import config_from

    args = build_parser().parse_args(["train", "--real", "cvl", "--real-repeat", "3"])
    config = config_from(args)
    assert (config.real, config.real_repeat) == (["cvl"], 3)
    with pytest.raises(DigitrecError, match=r"real \(--real\) must be a list of distinct names"):
        resolve_config(real=["orand"])
    with pytest.raises(DigitrecError, match=r"--real-repeat\) 2 needs --real"):
        resolve_config(real_repeat=2)
