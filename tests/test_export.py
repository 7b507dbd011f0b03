"""Export: ONNX, LiteRT and SavedModel round trips for a plain model and an ensemble, the parity
check, the ONNX metadata and model card, atomic output, and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import write_tiny_dataset

from digitrec.cli import main
from digitrec.data import DATASETS, as_model_input, load_dataset
from digitrec.errors import DigitrecError, ModelError

FORMATS = ("onnx", "litert", "saved_model")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """A small random dataset registered as ``tiny`` for the whole module."""
    directory = tmp_path_factory.mktemp("tiny")
    info, _ = write_tiny_dataset(
        directory, n_train=5100, n_test=40
    )  # room for the validation split
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(DATASETS, info.name, info)
        yield directory


@pytest.fixture(scope="module")
def plain_run(tiny_data, tmp_path_factory) -> Path:
    """A run directory of LeNet-5 trained for one epoch by ``train``."""
    from digitrec.train import resolve_config, train

    config = resolve_config("lenet5", dataset="tiny", epochs=1)
    return train(config, tmp_path_factory.mktemp("runs") / "plain", tiny_data, verbose=False)


@pytest.fixture(scope="module")
def ensemble_file(tiny_data, tmp_path_factory) -> Path:
    """One Keras model averaging two members' probabilities, briefly trained, as a .keras file."""
    import keras

    from digitrec.models import INPUT_SHAPE

    keras.utils.set_random_seed(1)
    inputs = keras.Input(INPUT_SHAPE)
    members = [
        keras.Sequential(
            [
                keras.layers.Conv2D(4, 3, activation="relu"),
                keras.layers.MaxPooling2D(2),
                keras.layers.Flatten(),
                keras.layers.Dense(10, activation="softmax"),
            ],
            name=f"member{i}",
        )
        for i in range(2)
    ]
    outputs = keras.layers.Average()([member(inputs) for member in members])
    model = keras.Model(inputs, outputs, name="ensemble")
    model.compile("adam", "sparse_categorical_crossentropy")
    data = load_dataset("tiny", tiny_data, download=False, progress=False)
    model.fit(as_model_input(data.train_images[:200]), data.train_labels[:200], verbose=0)
    path = tmp_path_factory.mktemp("ensemble") / "ensemble.keras"
    model.save(path)
    return path


def keras_probs(source: Path, tiny_data: Path) -> tuple[np.ndarray, np.ndarray]:
    """Keras's probabilities for the tiny test images, and those inputs."""
    from digitrec.saved_models import load_keras

    model, _ = load_keras(source)
    images = as_model_input(load_dataset("tiny", tiny_data, download=False).test_images)
    return np.asarray(model.predict(images, verbose=0)), images


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize("family", ["plain", "ensemble"])
def test_export_round_trip_matches_keras(
    format, family, plain_run, ensemble_file, tiny_data, tmp_path
):
    from digitrec.export import run_exported

    source = plain_run if family == "plain" else ensemble_file
    out = tmp_path / f"model-{family}"
    out = out.with_suffix(".tflite") if format == "litert" else out
    result = export_model_quietly(source, format, out, tiny_data)
    expected, images = keras_probs(source, tiny_data)
    actual = run_exported(result, format, images)
    assert result == out and out.exists()
    assert actual.shape == expected.shape == (40, 10)
    assert np.abs(actual - expected).max() <= 1e-5
    assert (actual.argmax(axis=1) == expected.argmax(axis=1)).all()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def export_model_quietly(source, format, out, tiny_data, **kwargs) -> Path:
    from digitrec.export import export_model

    return export_model(source, format, out, tiny_data, dataset="tiny", **kwargs)


def test_ensemble_exports_as_one_onnx_graph(ensemble_file, tiny_data, tmp_path):
    import onnxruntime as ort

    out = export_model_quietly(ensemble_file, "onnx", tmp_path / "e.onnx", tiny_data)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert len(session.get_inputs()) == 1 and len(session.get_outputs()) == 1
    assert session.get_outputs()[0].shape[-1] == 10


def test_onnx_metadata_describes_model_input_run_and_calibration(plain_run, tiny_data):
    import onnx

    from digitrec import __version__

    out = export_model_quietly(plain_run, "onnx", None, tiny_data)
    assert out == plain_run / "model.onnx"
    props = {p.key: json.loads(p.value) for p in onnx.load(str(out)).metadata_props}
    metrics = json.loads((plain_run / "metrics.json").read_text())
    assert props["classes"] == [str(d) for d in range(10)]
    assert props["input"]["shape"] == [None, 28, 28, 1]
    assert props["input"]["layout"] == "NHWC" and props["input"]["range"] == [0.0, 1.0]
    assert "white ink on black" in props["input"]["polarity"]
    assert "MNIST" in props["input"]["normalization"]
    assert props["model_name"] == "lenet5" and props["training_run"] == str(plain_run)
    assert props["test_accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1 / 40)
    assert props["digitrec_version"] == __version__
    assert props["temperature"] > 0 and 0 <= props["threshold"] <= 1
    assert props["calibration"]["target_rejection_rate"] == 0.005
    assert (
        props["data_checksums"]
        == json.loads((plain_run / "run.json").read_text())["dataset"]["checksums"]
    )
    assert props["parity"]["max_difference"] <= 1e-5
    card = (plain_run / "model.card.md").read_text()
    assert "digitrec train --model lenet5" in card and "--epochs 1" in card
    assert f"{props['test_accuracy']:.4%}" in card


def test_tta_export_averages_the_model_over_small_shifts(tiny_data, tmp_path):
    import onnx
    from scipy import ndimage

    from digitrec.saved_models import load_keras
    from digitrec.export import run_exported
    from digitrec.models import TTA_SHIFTS
    from digitrec.train import resolve_config, train

    config = resolve_config("lenet5", dataset="tiny", epochs=1, val_size=100)
    run_dir = train(config, tmp_path / "run", tiny_data, verbose=False)
    out = export_model_quietly(run_dir, "onnx", tmp_path / "tta.onnx", tiny_data, tta=True)
    model, _ = load_keras(run_dir)
    images = as_model_input(load_dataset("tiny", tiny_data, download=False).test_images)
    shifted = [ndimage.shift(images, (0, dy, dx, 0), order=0) for dy, dx in TTA_SHIFTS]
    expected = np.mean([model.predict(x, verbose=0) for x in shifted], axis=0)
    assert np.abs(run_exported(out, "onnx", images) - expected).max() <= 1e-5
    props = {p.key: json.loads(p.value) for p in onnx.load(str(out)).metadata_props}
    assert props["tta"] is True and props["model_name"] == "lenet5_tta"
    assert (
        f"digitrec export RUN_DIR --format onnx --tta --out {out}"
        in (tmp_path / "tta.card.md").read_text()
    )


def test_failed_parity_check_deletes_the_output_and_says_what_differed(
    plain_run, tiny_data, tmp_path, monkeypatch
):
    from digitrec import export

    real = export.run_exported
    monkeypatch.setattr(export, "run_exported", lambda *args: real(*args) + 1e-3)
    out = tmp_path / "bad.onnx"
    with pytest.raises(ModelError, match=r"largest probability difference 1\.00e-03"):
        export.export_model(plain_run, "onnx", out, tiny_data, dataset="tiny")
    assert list(tmp_path.iterdir()) == []


def test_failed_saved_model_check_leaves_no_directory(plain_run, tiny_data, tmp_path, monkeypatch):
    from digitrec import export

    monkeypatch.setattr(export, "run_exported", lambda path, format, images: images[:, 0, :10, 0])
    with pytest.raises(ModelError, match="predicted classes differ"):
        export.export_model(plain_run, "saved_model", tmp_path / "sm", tiny_data, dataset="tiny")
    assert list(tmp_path.iterdir()) == []


def test_unknown_format_and_missing_model_are_clear_errors(tmp_path):
    from digitrec.export import export_model

    with pytest.raises(ModelError, match="unknown export format 'tfjs'"):
        export_model(tmp_path, "tfjs")
    with pytest.raises(ModelError, match="no model found"):
        export_model(tmp_path / "nothing.keras", "onnx")


def test_export_cli_writes_the_file(plain_run, tiny_data, tmp_path, capsys):
    out = tmp_path / "cli.onnx"
    status = main(["export", str(plain_run), "--out", str(out), "--data-dir", str(tiny_data)])
    assert status == 0 and out.is_file() and (tmp_path / "cli.card.md").is_file()
    assert f"exported {out}" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "none"), "--rejection-rate", "0.1"]) == 2
    with pytest.raises(DigitrecError, match="rejection rate"):
        export_model_quietly(plain_run, "onnx", out, tiny_data, rejection_rate=1.5)


def test_export_and_model_loading_do_not_import_evaluation():
    # Keras itself imports scikit-learn when it loads (keras.src.wrappers), so only our imports
    # can be checked: neither digitrec.evaluate nor its scikit-learn and matplotlib.
    code = (
        "import sys\n"
        "import digitrec.export, digitrec.saved_models\n"
        "print(sorted({'digitrec.evaluate', 'sklearn', 'matplotlib'} & set(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_training_command_spells_out_settings_a_run_predates():
    from digitrec.export import training_command
    from digitrec.train import resolve_config

    config = resolve_config("best", seed=3).to_dict()
    assert training_command(config) == "digitrec train --model best --seed 3"
    del config["augment"]  # as in a run.json written before the setting existed: it was off
    assert training_command(config) == "digitrec train --model best --seed 3 --augment 0.0"
