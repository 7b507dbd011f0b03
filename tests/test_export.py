"""Export: ONNX, LiteRT and SavedModel round trips for a plain model and an ensemble, the parity
check, the ONNX metadata and model card, atomic output, what an export may replace (nothing of
the user's), and the CLI."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import write_tiny_dataset

from digitrec.cli import main
from digitrec.data import DATASETS, as_model_input, load_dataset
from digitrec.errors import DigitrecError, ModelError
from digitrec.training.export_output import FORMATS, is_digitrec_output


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
    """A run directory of LeNet-5 trained for one epoch by ``train``, with a validation split of
    100 images: quick to calibrate, so quick to export to ONNX."""
    from digitrec.training.config import resolve_config
    from digitrec.training.train import train

    config = resolve_config("lenet5", dataset="tiny", epochs=1, val_size=100)
    return train(config, tmp_path_factory.mktemp("runs") / "plain", tiny_data, verbose=False)


@pytest.fixture(scope="module")
def ensemble_run(tiny_data, tmp_path_factory) -> Path:
    """One Keras model averaging two members' probabilities, briefly trained, in a run
    directory (``saved_after_brief_training``)."""
    import keras

    from digitrec.training.models import INPUT_SHAPE

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
    return saved_after_brief_training(model, tiny_data, tmp_path_factory.mktemp("ensemble"))


@pytest.fixture(scope="module")
def bfloat16_checkpoint(tiny_data, tmp_path_factory) -> Path:
    """LeNet-5 trained briefly in bfloat16 mixed precision, saved as such (a checkpoint)."""
    from digitrec.training.config import resolve_config
    from digitrec.training.model_setup import new_model

    model = new_model(resolve_config("lenet5", precision="bfloat16"), 10)
    return saved_after_brief_training(model, tiny_data, tmp_path_factory.mktemp("bfloat16"))


def saved_after_brief_training(model, tiny_data: Path, directory: Path) -> Path:
    """``model`` fitted for one pass over 200 tiny training images, saved as ``model.keras`` in
    ``directory``, a run directory whose ``run.json`` holds out 100 images for validation, as
    the plain run does: the export calibrates on them, each rendered as a user's image (on the
    5,000 of a bare .keras file, an ONNX export took 30 to 50 s; on 100, under 2 s)."""
    model.compile("adam", "sparse_categorical_crossentropy")
    data = load_dataset("tiny", tiny_data, download=False, progress=False)
    model.fit(as_model_input(data.train_images[:200]), data.train_labels[:200], verbose=0)
    model.save(directory / "model.keras")
    (directory / "run.json").write_text(
        json.dumps({"config": {"dataset": "tiny", "val_size": 100}})
    )
    return directory


def test_a_bfloat16_model_is_saved_computing_in_float32_with_its_outputs(
    bfloat16_checkpoint, tiny_data
):
    from digitrec.training.models import as_float32, computes_in_float32
    from digitrec.training.saved_models import load_keras

    model, _ = load_keras(bfloat16_checkpoint)
    assert not computes_in_float32(model)
    copy = as_float32(model)
    assert computes_in_float32(copy)
    assert {layer.dtype_policy.name for layer in copy.layers} == {"float32"}
    images = as_model_input(load_dataset("tiny", tiny_data, download=False).test_images)
    mixed, exact = model.predict(images, verbose=0), copy.predict(images, verbose=0)
    assert exact.dtype == np.float32
    assert np.abs(exact - np.asarray(mixed, dtype=np.float32)).max() < 0.02
    for ours, theirs in zip(copy.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_a_bfloat16_checkpoint_exports_to_onnx_in_float32(bfloat16_checkpoint, tiny_data, tmp_path):
    import onnx

    result = export_model_quietly(bfloat16_checkpoint, "onnx", tmp_path / "m.onnx", tiny_data)
    proto = onnx.load(str(result))
    bfloat16 = onnx.TensorProto.BFLOAT16
    assert proto.graph.initializer
    assert all(tensor.data_type != bfloat16 for tensor in proto.graph.initializer)
    casts = [a.i for node in proto.graph.node for a in node.attribute if a.name == "to"]
    assert bfloat16 not in casts
    metadata = {p.key: json.loads(p.value) for p in proto.metadata_props}
    assert metadata["parity"]["max_difference"] <= 1e-5


def keras_probs(source: Path, tiny_data: Path) -> tuple[np.ndarray, np.ndarray]:
    """Keras's probabilities for the tiny test images, and those inputs."""
    from digitrec.training.saved_models import load_keras

    model, _ = load_keras(source)
    images = as_model_input(load_dataset("tiny", tiny_data, download=False).test_images)
    return np.asarray(model.predict(images, verbose=0)), images


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize("family", ["plain", "ensemble"])
def test_export_round_trip_matches_keras(
    format, family, plain_run, ensemble_run, tiny_data, tmp_path
):
    from digitrec.training.export import run_exported

    source = plain_run if family == "plain" else ensemble_run
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
    assert is_digitrec_output(out, format)


def export_model_quietly(source, format, out, tiny_data, **kwargs) -> Path:
    from digitrec.training.export import export_model

    return export_model(source, format, out, tiny_data, dataset="tiny", **kwargs)


def test_ensemble_exports_as_one_onnx_graph(ensemble_run, tiny_data, tmp_path):
    import onnxruntime as ort

    out = export_model_quietly(ensemble_run, "onnx", tmp_path / "e.onnx", tiny_data)
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


def test_tta_export_averages_the_model_over_small_shifts(plain_run, tiny_data, tmp_path):
    import onnx
    from scipy import ndimage

    from digitrec.training.export import run_exported
    from digitrec.training.models import TTA_SHIFTS
    from digitrec.training.saved_models import load_keras

    out = export_model_quietly(plain_run, "onnx", tmp_path / "tta.onnx", tiny_data, tta=True)
    model, _ = load_keras(plain_run)
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
    from digitrec.training import export

    real = export.run_exported
    monkeypatch.setattr(export, "run_exported", lambda *args: real(*args) + 1e-3)
    out = tmp_path / "bad.onnx"
    with pytest.raises(ModelError, match=r"largest probability difference 1\.00e-03"):
        export.export_model(plain_run, "onnx", out, tiny_data, dataset="tiny")
    assert list(tmp_path.iterdir()) == []


def test_failed_saved_model_check_leaves_no_directory(plain_run, tiny_data, tmp_path, monkeypatch):
    from digitrec.training import export

    monkeypatch.setattr(export, "run_exported", lambda path, format, images: images[:, 0, :10, 0])
    with pytest.raises(ModelError, match="predicted classes differ"):
        export.export_model(plain_run, "saved_model", tmp_path / "sm", tiny_data, dataset="tiny")
    assert list(tmp_path.iterdir()) == []


def test_unknown_format_and_missing_model_are_clear_errors(tmp_path):
    from digitrec.training.export import export_model

    with pytest.raises(ModelError, match="unknown export format 'tfjs'"):
        export_model(tmp_path, "tfjs")
    with pytest.raises(ModelError, match="no model found"):
        export_model(tmp_path / "nothing.keras", "onnx")


def test_the_packaged_model_cannot_be_exported_again():
    from digitrec.training.export import export_model

    with pytest.raises(
        ModelError, match=r"needs a Keras model.*packaged model is already exported"
    ):
        export_model("default", "onnx")


def user_folder(path: Path) -> tuple[Path, dict[str, bytes | None]]:
    """A folder of someone's own files, and a snapshot of it to compare with later."""
    (path / "sub").mkdir(parents=True)
    (path / "notes.txt").write_text("mine")
    (path / "sub" / "data.csv").write_text("1,2\n")
    return path, snapshot(path)


def snapshot(path: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(path)): p.read_bytes() if p.is_file() else None
        for p in sorted(path.rglob("*"))
    }


def test_a_users_folder_survives_saved_model_export_untouched(
    plain_run, tiny_data, tmp_path, monkeypatch, capsys
):
    folder, before = user_folder(tmp_path / "mine")
    export = ["export", str(plain_run), "--format", "saved_model", "--data-dir", str(tiny_data)]
    assert main([*export, "--out", str(folder)]) == 2
    assert "mine already exists; choose another --out" in capsys.readouterr().err
    assert main([*export, "--out", str(folder), "--force"]) == 2
    assert "is not a digitrec saved_model export; not replacing it" in capsys.readouterr().err
    monkeypatch.chdir(folder)
    for force in ([], ["--force"]):
        assert main([*export, "--out", ".", *force]) == 2
        assert "is the working folder" in capsys.readouterr().err
    assert snapshot(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


@pytest.mark.parametrize("format", ["onnx", "litert"])
def test_a_single_file_export_to_a_folder_goes_inside_it(
    format, plain_run, tiny_data, tmp_path, monkeypatch
):
    folder, before = user_folder(tmp_path / "mine")
    monkeypatch.chdir(folder)
    out = export_model_quietly(plain_run, format, ".", tiny_data)
    assert out == folder / f"model{FORMATS[format]}" and is_digitrec_output(out, format)
    written = {out.name} | ({"model.card.md"} if format == "onnx" else set())
    assert set(snapshot(folder)) == set(before) | written
    assert {k: v for k, v in snapshot(folder).items() if k in before} == before


def test_force_replaces_a_previous_export_only_while_it_holds_nothing_else(
    plain_run, tiny_data, tmp_path
):
    import keras

    out = tmp_path / "sm"
    export_model_quietly(plain_run, "saved_model", out, tiny_data)
    first = (out / "saved_model.pb").stat().st_ino
    (out / "extra.txt").write_text("added to our export")
    (out / "variables" / "notes.txt").write_text("and inside it")
    with pytest.raises(ModelError, match="already exists; choose another --out"):
        export_model_quietly(plain_run, "saved_model", out, tiny_data)
    ours_and_theirs = snapshot(out)
    with pytest.raises(
        DigitrecError,
        match=r"sm holds files that are not part of a digitrec saved_model export "
        r"\(extra.txt, variables\); not replacing it, even with --force",
    ):
        export_model_quietly(plain_run, "saved_model", out, tiny_data, force=True)
    assert snapshot(out) == ours_and_theirs
    (out / "extra.txt").unlink()
    (out / "variables" / "notes.txt").unlink()
    export_model_quietly(plain_run, "saved_model", out, tiny_data, force=True)
    assert (
        is_digitrec_output(out, "saved_model") and (out / "saved_model.pb").stat().st_ino != first
    )

    foreign = tmp_path / "foreign"  # a SavedModel, but exported by someone else
    keras.saving.load_model(plain_run / "model.keras").export(str(foreign), verbose=False)
    before = snapshot(foreign)
    with pytest.raises(ModelError, match="is not a digitrec saved_model export"):
        export_model_quietly(plain_run, "saved_model", foreign, tiny_data, force=True)
    assert snapshot(foreign) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign", "sm"]


def test_force_replaces_only_a_single_file_export_of_ours(plain_run, tiny_data, tmp_path):
    import onnx

    out = export_model_quietly(plain_run, "onnx", tmp_path / "m.onnx", tiny_data)
    first = out.stat().st_ino
    with pytest.raises(ModelError, match=r"m\.onnx already exists"):
        export_model_quietly(plain_run, "onnx", out, tiny_data)
    assert export_model_quietly(plain_run, "onnx", out, tiny_data, force=True) == out
    assert out.stat().st_ino != first and is_digitrec_output(out, "onnx")

    other = tmp_path / "other.onnx"  # a valid ONNX file from another producer
    graph = onnx.helper.make_graph([], "empty", [], [])
    onnx.save(onnx.helper.make_model(graph, producer_name="someone"), str(other))
    card = tmp_path / "third.card.md"  # our model's name, but the user's notes
    card.write_text("my notes on the third model\n")
    for target, refused in ((other, other), (tmp_path / "third.onnx", card)):
        before = refused.read_bytes()
        with pytest.raises(
            ModelError, match=re.escape(f"{refused.name} exists and is not a digitrec")
        ):
            export_model_quietly(plain_run, "onnx", target, tiny_data, force=True)
        assert refused.read_bytes() == before
    assert not (tmp_path / "third.onnx").exists()


@pytest.mark.parametrize("format", ["litert", "saved_model"])
def test_an_export_clears_what_a_killed_export_left(format, plain_run, tiny_data, tmp_path):
    out = tmp_path / f"model{FORMATS[format]}"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], text=True, capture_output=True
    ).stdout.strip()
    left = tmp_path / f".{out.name}.tmp-{dead}@{socket.gethostname()}-abcd1234{FORMATS[format]}"
    left.mkdir() if format == "saved_model" else left.write_bytes(b"half an export")
    live = tmp_path / f".{out.name}.tmp-{os.getpid()}@{socket.gethostname()}-live"
    live.write_bytes(b"another export still running")
    export_model_quietly(plain_run, format, out, tiny_data)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, live.name])


def test_export_cli_writes_the_file_and_shows_its_steps(plain_run, tiny_data, tmp_path, capsys):
    out = tmp_path / "cli.onnx"
    status = main(["export", str(plain_run), "--out", str(out), "--data-dir", str(tiny_data)])
    assert status == 0 and out.is_file() and (tmp_path / "cli.card.md").is_file()
    captured = capsys.readouterr()
    assert f"exported {out}" in captured.out
    assert "checking the export against Keras on 40 test images" in captured.err
    assert "calibrating on the validation split" in captured.err and "\x1b" not in captured.err
    assert main(["export", str(tmp_path / "none"), "--rejection-rate", "0.1"]) == 2
    with pytest.raises(DigitrecError, match="rejection rate"):
        export_model_quietly(plain_run, "onnx", out, tiny_data, rejection_rate=1.5)


def test_export_cli_offers_every_format():
    from digitrec.cli import build_parser

    parser = build_parser()
    for format in FORMATS:
        assert parser.parse_args(["export", "RUN", "--format", format]).format == format
    with pytest.raises(SystemExit):
        parser.parse_args(["export", "RUN", "--format", "tfjs"])


def test_export_prints_no_tensorflow_or_library_noise(plain_run, tmp_path):
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from conftest import write_tiny_dataset\n"
        "from digitrec.data import DATASETS\n"
        "from digitrec.cli import main\n"
        "os.environ.pop('TF_CPP_MIN_LOG_LEVEL')  # as a user has it (conftest sets it)\n"
        "DATASETS['tiny'] = write_tiny_dataset(Path(sys.argv[2]), n_train=5100, n_test=40)[0]\n"
        "sys.exit(main(sys.argv[3:]))\n"
    )
    out = tmp_path / "quiet.onnx"
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["TF_ENABLE_ONEDNN_OPTS"] = "1"  # so that TensorFlow has its notice to print
    tests = Path(__file__).parent
    args = ["export", str(plain_run), "--out", str(out), "--data-dir", str(tmp_path / "tiny")]
    result = subprocess.run(
        [sys.executable, "-c", code, str(tests), str(tmp_path / "tiny"), *args],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines and all(line.startswith("[") and " s] " in line for line in lines), lines


def test_training_command_spells_out_settings_a_run_predates():
    from digitrec.training.config import resolve_config
    from digitrec.training.export import training_command

    config = resolve_config("best", seed=3).to_dict()
    assert training_command(config) == "digitrec train --model best --seed 3"
    del config["augment"]  # as in a run.json written before the setting existed: it was off
    assert training_command(config) == "digitrec train --model best --seed 3 --augment 0.0"
