"""Fine-tuning on your own images (``digitrec train --images DIR --init SOURCE``): it learns
them, starts from the weights named, mixes MNIST into every batch, refuses bad combinations and
sources clearly, and leaves a run directory that predict and serve take directly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import write_tiny_dataset
from fresh_python import run_importing_none_of
from PIL import Image
from synthetic import font_digit

from digitrec.cli import main
from digitrec.errors import DigitrecError, ModelError
from digitrec.read.image_folders import ImageFolderData
from digitrec.training.config import TrainConfig, resolve_config

PER_CLASS = 8


def own_digit(digit: int, i: int) -> Image.Image:
    """A typeset digit, enlarged and shifted a little, dark on white: a user's photo of it."""
    paper = np.full((120, 120), 255, np.uint8)
    glyph = np.asarray(Image.fromarray(255 - font_digit(digit)).resize((70 + 4 * i, 70 + 4 * i)))
    top = 5 + 2 * i
    paper[top : top + glyph.shape[0], top : top + glyph.shape[1]] = glyph
    return Image.fromarray(paper)


def make_own_folder(root: Path) -> Path:
    for digit in range(10):
        (root / str(digit)).mkdir(parents=True)
        for i in range(PER_CLASS):
            own_digit(digit, i).save(root / str(digit) / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """The tiny random dataset, registered for the module: its directory."""
    from digitrec.data import DATASETS

    directory = tmp_path_factory.mktemp("data") / "tiny"
    info, _ = write_tiny_dataset(directory)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(DATASETS, info.name, info)
        yield directory


@pytest.fixture(scope="module")
def base_run(tiny_data, tmp_path_factory) -> Path:
    """A small perceptron trained one epoch on random images: it cannot read digits."""
    from digitrec.training.train import train

    config = resolve_config(
        "mlp", dataset="tiny", epochs=1, batch_size=16, val_size=10, model_args={"hidden": [32, 16]}
    )
    return train(config, tmp_path_factory.mktemp("base") / "run", tiny_data, verbose=False)


@pytest.fixture(scope="module")
def own_folder(tmp_path_factory) -> Path:
    return make_own_folder(tmp_path_factory.mktemp("own") / "digits")


def finetune_config(init: str | Path, images: Path, **settings) -> TrainConfig:
    return resolve_config(
        init=str(init),
        images=[str(images)],
        dataset="tiny",
        val_size=10,
        images_val=0.25,
        **{"epochs": 25, "learning_rate": 3e-3, "augment": 0.0, "batch_size": 16, **settings},
    )


@pytest.fixture(scope="module")
def tuned_run(base_run, own_folder, tiny_data, tmp_path_factory) -> Path:
    from digitrec.training.train import train

    config = finetune_config(base_run, own_folder)
    return train(config, tmp_path_factory.mktemp("tuned") / "run", tiny_data, verbose=False)


def held_out_accuracy(model, run_dir: Path) -> float:
    """Accuracy of a Keras model on the run's held-out own images, counted here."""
    from digitrec.training.finetune import load_own_images
    from digitrec.training.saved_models import predict_keras
    from digitrec.training.train import recorded_config

    val = load_own_images(recorded_config(run_dir), verbose=False).val
    return float((predict_keras(model, val.uint8_images()).argmax(axis=1) == val.labels).mean())


def test_fine_tuning_learns_your_held_out_digits_that_the_initial_model_misreads(
    base_run, tuned_run
):
    from digitrec.training.saved_models import load_keras

    before = held_out_accuracy(load_keras(base_run)[0], tuned_run)
    after = held_out_accuracy(load_keras(tuned_run)[0], tuned_run)
    metrics = json.loads((tuned_run / "metrics.json").read_text())
    assert metrics["own_val_accuracy"] == pytest.approx(after)
    # measured at this seed: 0.10 before, 1.00 after, of 20 held-out images (5 points each)
    assert after >= 0.95 and after > before + 0.7, (before, after)


def test_the_run_records_its_images_and_the_initial_models_architecture(tuned_run, own_folder):
    record = json.loads((tuned_run / "run.json").read_text())
    assert record["config"]["model"] == "mlp"
    assert record["config"]["init"].endswith("run")
    assert record["images"]["folders"] == [str(own_folder)]
    assert sum(record["images"]["val"].values()) == 20  # a quarter of 80, every class
    assert set(record["images"]["val"]) == {str(d) for d in range(10)}


def test_the_run_ends_with_an_onnx_model_calibrated_also_on_your_held_out_images(
    tuned_run, base_run, own_folder
):
    from digitrec.read.recognizer import Recognizer

    metadata = Recognizer.load(str(tuned_run)).metadata
    assert "20 held-out images of the user's own" in metadata["calibration"]["split"]
    command = metadata["training_command"]
    assert command.startswith(f"digitrec train --init {base_run} ")
    assert f"--images {own_folder}" in command and "--model" not in command
    assert command in (tuned_run / "model.card.md").read_text()


def test_the_runs_closing_export_shows_its_steps_when_verbose(
    tuned_run, tiny_data, tmp_path, capsys
):
    from digitrec.training.finetune import load_own_images
    from digitrec.training.train import export_ready, recorded_config

    run_dir = shutil.copytree(tuned_run, tmp_path / "run")
    own = load_own_images(recorded_config(run_dir), verbose=False)
    capsys.readouterr()
    export_ready(run_dir, own, tiny_data)
    assert capsys.readouterr().err == ""
    export_ready(run_dir, own, tiny_data, verbose=True)
    steps = capsys.readouterr().err.splitlines()
    assert steps and all(line.startswith("[") and " s] " in line for line in steps), steps
    assert any("calibrating on the validation split" in line for line in steps)


def test_predict_takes_the_run_directory_and_reads_your_digits(tuned_run, tmp_path, capsys):
    own_digit(3, 1).save(tmp_path / "three.png")
    assert main(["predict", "--model", str(tuned_run), "--single", "--json",
                 str(tmp_path / "three.png")]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out.splitlines()[0])["text"] == "3"


def test_serve_takes_the_run_directory_without_importing_tensorflow(tuned_run, tmp_path):
    own_digit(7, 2).save(tmp_path / "seven.png")
    code = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from digitrec.serve.app import create_app, ServeSettings\n"
        f"app = create_app(settings=ServeSettings(model={str(tuned_run)!r}))\n"
        "with TestClient(app, base_url='http://localhost') as client:\n"
        "    reply = client.post('/api/v1/recognize', content=sys.stdin.buffer.read(),\n"
        "                        headers={'content-type': 'image/png'})\n"
        "    reply.raise_for_status()\n"
        "    assert reply.json()['text'] == '7', reply.json()\n"
    )
    stdin = (tmp_path / "seven.png").read_bytes()
    result = run_importing_none_of(("tensorflow", "keras"), code, stdin=stdin)
    assert result.returncode == 0, result.stderr.decode()


@pytest.mark.parametrize("kind", ["run directory", ".keras file"])
def test_init_starts_from_the_weights_of_a_run_or_a_keras_file(base_run, kind):
    from digitrec.training.finetune import starting_model
    from digitrec.training.saved_models import load_keras

    source = base_run if kind == "run directory" else base_run / "model.keras"
    model = starting_model(resolve_config(init=str(source)))
    expected = load_keras(base_run)[0]
    for got, want in zip(model.get_weights(), expected.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)


def test_init_default_starts_from_the_shipped_model():
    from digitrec.assets import default_keras_path
    from digitrec.training.finetune import starting_model, with_architecture
    from digitrec.training.saved_models import load_keras

    config = resolve_config(init="default")
    model = starting_model(config)
    shipped = load_keras(default_keras_path())[0]
    np.testing.assert_array_equal(model.get_weights()[0], shipped.get_weights()[0])
    assert with_architecture(config, model).model == "best"


def test_head_only_leaves_every_layer_but_the_last_dense_frozen(base_run):
    from digitrec.training.finetune import starting_model

    model = starting_model(resolve_config(init=str(base_run), train_layers="head"))
    assert [layer.name for layer in model.layers if layer.trainable] == [model.layers[-1].name]
    assert len(model.trainable_weights) == 2


def test_frozen_norm_trains_all_but_batch_normalization_which_keeps_its_statistics():
    import keras

    from digitrec.training.finetune import starting_model

    model = starting_model(resolve_config(init="default", train_layers="frozen-norm"))
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    others = [layer for layer in model.layers if layer.weights and layer not in norms]
    assert norms and others and all(layer.trainable for layer in others)
    assert not any(layer.trainable for layer in norms)
    before = [np.array(w) for w in model.non_trainable_weights]
    batch = np.random.default_rng(0).random((8, 28, 28, 1), dtype=np.float32)
    model(batch, training=True)
    for old, new in zip(before, model.non_trainable_weights, strict=True):
        np.testing.assert_array_equal(old, np.array(new))


@pytest.mark.parametrize("share", [0.0, 0.25])
def test_keep_init_averages_the_trained_weights_with_the_starting_models(base_run, share):
    from digitrec.training.finetune import keep_starting_weights, starting_model

    config = resolve_config(init=str(base_run), keep_init=share)
    model = starting_model(config)
    start = model.get_weights()
    model.set_weights([w + 1.0 for w in start])  # what training moved
    kept = keep_starting_weights(model, config)
    for got, before in zip(kept.get_weights(), start, strict=True):
        np.testing.assert_allclose(got, before + (1 - share), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "missing", "no such file or folder"),
        (lambda tmp: tmp, r"no model.keras \(is the run finished\?"),
        (lambda tmp: (tmp / "notes.txt").write_text("hi") and tmp / "notes.txt", "not a Keras"),
        (
            lambda tmp: (tmp / "broken.keras").write_text("x") and tmp / "broken.keras",
            "cannot load",
        ),
    ],
    ids=["missing", "unfinished run", "other file", "corrupt .keras"],
)
def test_a_bad_init_source_is_a_clear_model_error(tmp_path, make, message):
    from digitrec.training.finetune import starting_model

    with pytest.raises(ModelError, match=message):
        starting_model(resolve_config(init=str(make(tmp_path))))


def other_model(path: Path, input_shape: tuple[int, ...], classes: int) -> Path:
    """A Keras model file that is no digit classifier of ours (another input or classes)."""
    import keras

    layers = [keras.layers.Flatten(), keras.layers.Dense(classes, activation="softmax")]
    keras.Sequential([keras.Input(input_shape), *layers]).save(path)
    return path


@pytest.mark.parametrize(
    ("input_shape", "classes", "found"),
    [
        ((32, 32, 3), 10, "input (None, 32, 32, 3), output (None, 10)"),
        ((28, 28, 1), 26, "input (None, 28, 28, 1), output (None, 26)"),
    ],
    ids=["other-input", "other-classes"],
)
def test_init_with_a_model_of_another_architecture_is_a_clear_error(
    input_shape, classes, found, tiny_data, tmp_path, capsys
):
    init = other_model(tmp_path / "other.keras", input_shape, classes)
    out = tmp_path / "run"
    data = ["--dataset", "tiny", "--val-size", "10", "--data-dir", str(tiny_data), "--quiet"]
    assert main(["train", "--init", str(init), *data, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--init {init}: a model of another architecture ({found}); fine-tuning starts" in err
    assert "Traceback" not in err and not out.exists()


def test_keep_init_refuses_an_init_that_became_another_architecture(base_run, tmp_path):
    from digitrec.training.finetune import keep_starting_weights, starting_model

    config = resolve_config(init=str(base_run), keep_init=0.25)
    model = starting_model(config)
    replaced = other_model(tmp_path / "replaced.keras", (28, 28, 1), 10)
    with pytest.raises(ModelError, match="is no longer the model this run started from"):
        keep_starting_weights(model, config.updated({"init": str(replaced)}))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"model": "lenet5", "init": "default"}, "--model and --init exclude each other"),
        ({"init": "x.onnx"}, "exported ONNX model cannot be trained on"),
        ({"init": "default", "model_args": {"dropout": 0.1}}, "leave out --model-args"),
        ({"init": "default", "ensemble": 2}, "leave out --ensemble"),
        ({"train_layers": "head"}, "needs --init"),
        ({"keep_init": 0.3}, r"keep_init \(--keep-init\) 0.3 needs --init"),
        ({"images": ["a"], "ensemble": 2}, "--images trains a single model"),
        ({"images": "folder"}, "must be a list of paths"),
        (
            {"mix_mnist": 1.0},
            r"mix_mnist \(--mix-mnist\) must be a finite number at least 0 and below 1",
        ),
    ],
)
def test_combinations_that_cannot_work_are_refused_naming_the_flags(settings, message):
    with pytest.raises(DigitrecError, match=message):
        resolve_config(**settings)


def test_images_is_a_repeatable_flag_and_a_list_in_a_params_file(tmp_path):
    from digitrec.cli import build_parser
    from digitrec.cli.train import config_from

    params = tmp_path / "p.json"
    params.write_text(json.dumps({"images": ["c"], "init": "default"}))
    args = build_parser().parse_args(
        ["train", "--images", "a", "--images", "b", "--init", "default"]
    )
    assert config_from(args).images == ["a", "b"]
    assert config_from(build_parser().parse_args(["train", "--params", str(params)])).images == [
        "c"
    ]


def test_with_init_the_finetune_recipe_replaces_the_models():
    from digitrec.training.models import FINETUNE_RECIPE

    config = resolve_config(init="default")
    assert {key: getattr(config, key) for key in FINETUNE_RECIPE} == FINETUNE_RECIPE
    assert resolve_config(init="default", epochs=3).epochs == 3


def tagged_images(count: int, value: int) -> ImageFolderData:
    images = np.full((count, 28, 28), value / 255, np.float32)
    return ImageFolderData(images, np.zeros(count, np.uint8), [Path("x")] * count)


@pytest.mark.parametrize("mix", [0.0, 0.25, 0.5])
def test_every_batch_holds_your_images_and_the_set_share_of_mnist(mix):
    from digitrec.training.finetune import batch_shares, mixed_dataset

    config = resolve_config(init="default", batch_size=8, mix_mnist=mix, augment=0.0)
    own = tagged_images(21, 255)
    mnist = np.zeros((50, 28, 28), np.uint8)
    dataset, _ = mixed_dataset(own, mnist, np.ones(50, np.uint8), config)
    n_own, n_mnist = batch_shares(config)
    assert n_mnist == round(8 * mix)
    batches = list(dataset.as_numpy_iterator())
    assert len(batches) == -(-21 // n_own)  # one pass over your images
    seen = 0
    for images, _ in batches:
        ours = int((images.reshape(len(images), -1).max(axis=1) == 1.0).sum())
        assert len(images) - ours == n_mnist  # MNIST's share in every batch
        seen += ours
    assert seen == 21


def test_a_bad_image_folder_fails_before_any_run_directory_is_made(tmp_path, capsys):
    (tmp_path / "mine" / "eleven").mkdir(parents=True)
    out = tmp_path / "run"
    code = main(
        ["train", "--init", "default", "--images", str(tmp_path / "mine"), "--out", str(out)]
    )
    assert code == 2
    assert "not a class folder" in capsys.readouterr().err
    assert not out.exists()


def test_a_fine_tuning_run_killed_before_its_first_epoch_resumes_from_the_initial_model(
    tuned_run, tiny_data, tmp_path
):
    from digitrec.training.saved_models import load_keras
    from digitrec.training.train import resume

    run = json.loads((tuned_run / "run.json").read_text())
    run["config"]["epochs"] = 2
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps(run))
    resume(run_dir, tiny_data, verbose=False)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and len(metrics["history"]["val_accuracy"]) == 2
    assert "own_val_accuracy" in metrics and (run_dir / "model.onnx").exists()
    # the initial model's small layers (a new "mlp" would have 512 and 256 units)
    assert load_keras(run_dir)[0].count_params() == load_keras(tuned_run)[0].count_params()
