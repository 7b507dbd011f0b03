"""``digitrec train-lines --init default --strings DIR``: the line reader fine-tuned on your own
written numbers, at a tiny scale (``--quick``): the layout checked before anything trains, the
split, a run stopped and resumed, and the result read by ``predict --model RUN``,
``Recognizer.load(RUN)`` and ``evaluate RUN --strings`` without TensorFlow."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from fresh_python import run_importing_none_of
from PIL import Image
from test_train_lines import cli_results_without_tensorflow

from digitrec.cli import main
from digitrec.training.line_settings import CARD_FILE, RECIPE_FILE, StringsRecipe

STRINGS = 12


def write_strings(folder: Path, mnist_dir: Path, count: int = STRINGS, seed: int = 5) -> Path:
    """``count`` generated lines of digits (validation digits) as image files and a labels.csv,
    with one more file listed that is no image."""
    from digitrec.data import load_dataset, split_validation
    from digitrec.synth.pages import line_samples

    data = load_dataset("mnist", mnist_dir, progress=False)
    _, _, digits, labels = split_validation(data.train_images, data.train_labels, 5000)
    samples = [s for s in line_samples(digits, labels, 4 * count, seed) if s.text][:count]
    folder.mkdir(parents=True)
    rows = []
    for k, sample in enumerate(samples):
        Image.fromarray(sample.image).save(folder / f"s{k}.png")
        rows.append({"file": f"s{k}.png", "text": sample.text, "note": "ignored"})
    (folder / "broken.png").write_bytes(b"not an image")
    rows.append({"file": "broken.png", "text": "12", "note": ""})
    with (folder / "labels.csv").open("w", newline="") as stream:
        table = csv.DictWriter(stream, ["file", "text", "note"])
        table.writeheader()
        table.writerows(rows)
    return folder


SLOW = pytest.mark.slow  # the tests of one quick fine-tuning run (about a minute)


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory, mnist_dir):
    """A quick fine-tuning run, stopped before its export, then resumed: (run, strings, log)."""
    from digitrec.training import line_strings

    root = tmp_path_factory.mktemp("strings")
    strings = write_strings(root / "mine", mnist_dir)
    run = root / "run"
    argv = ["train-lines", "--data-dir", str(mnist_dir), "--quick"]

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    err = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stderr(err):
        patch.setattr(line_strings, "export_line_model", interrupted)
        first = main([*argv, "--init", "default", "--strings", str(strings), "--out", str(run)])
    stopped = sorted(p.name for p in run.iterdir())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(line_strings, "fine_tune", lambda *a, **k: pytest.fail("trained again"))
        second = main(["train-lines", "--resume", str(run)])
    return (
        run,
        strings,
        {"first": first, "stopped": stopped, "second": second, "err": err.getvalue()},
    )


@SLOW
def test_a_run_stopped_after_training_resumes_at_its_export(finetuned):
    run, strings, log = finetuned
    assert log["first"] == 130 and log["second"] == 0
    assert f"skipped {strings / 'broken.png'}: " in log["err"]  # the unreadable file, listed
    assert f"digitrec train-lines --resume {run}" in log["err"]
    assert {"model.keras", "metrics.json", "filter.keras", RECIPE_FILE} <= set(log["stopped"])
    assert "lines.onnx" not in log["stopped"]
    assert (run / CARD_FILE).is_file() and (run / "lines.onnx").is_file()


@SLOW
def test_the_recipe_records_the_folder_and_its_labels_digest(finetuned):
    from digitrec.training.line_settings import labels_digest, recorded_recipe

    run, strings, _ = finetuned
    recorded = json.loads((run / RECIPE_FILE).read_text())["fine_tuning"]
    assert recorded["strings"] == str(strings) and recorded["init"] == "default"
    assert recorded["labels_digest"] == labels_digest(strings)
    with pytest.raises(Exception, match="already complete"):
        recorded_recipe(run)


@SLOW
def test_the_export_records_parity_the_fine_tuning_and_the_held_out_strings(finetuned):
    from digitrec.read.line_reader import LineReader

    run, _, _ = finetuned
    meta = LineReader.load(run / "lines.onnx").metadata
    assert meta["parity"]["max_difference"] <= 1e-4 and meta["parity"]["lines"] > 0
    tuning = meta["fine_tuning"]
    assert tuning["strings"] == {"train": 10, "val": 2, "skipped": 1}  # 12 readable, 20% out
    assert tuning["strings_val"] == 2 and 0 <= tuning["strings_val_exact"] <= 1
    assert "line_filter" in meta and np.isfinite(meta["temperature"])
    card = (run / CARD_FILE).read_text()
    assert "## Fine-tuning on your strings" in card
    assert f"--init default --strings {tuning['recipe']['strings']}" in card
    recipe = StringsRecipe(**tuning["recipe"])
    own, lines = recipe.own_per_batch, recipe.batch_size - recipe.own_per_batch
    assert (
        f"Every batch held {own} of your\ntraining strings" in card and f"and {lines} lines" in card
    )


@SLOW
def test_batch_normalization_stays_frozen_in_the_fine_tuned_model(finetuned):
    import keras

    from digitrec.training.line_settings import shipped_keras_path

    run, _, _ = finetuned
    tuned = keras.saving.load_model(run / "model.keras")
    start = keras.saving.load_model(shipped_keras_path())
    norms = [layer for layer in tuned.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and not any(layer.trainable for layer in norms)
    for layer in norms:
        for tuned_weight, start_weight in zip(
            layer.get_weights(), start.get_layer(layer.name).get_weights(), strict=True
        ):
            np.testing.assert_array_equal(tuned_weight, start_weight)


@SLOW
def test_predict_and_evaluate_read_with_the_run_without_tensorflow(finetuned):
    run, strings, _ = finetuned
    steps = [
        "import io, json, contextlib",
        "from digitrec.cli import main",
        "from digitrec.read.recognizer import Recognizer",
        f"run, strings = {str(run)!r}, {str(strings)!r}",
        "described, out = Recognizer.load(run).describe(), io.StringIO()",
        "with contextlib.redirect_stdout(out):",
        "    predicted = main(['predict', '--model', run, '--json', strings + '/s0.png'])",
        "    evaluated = main(['evaluate', run, '--strings', strings, '--json'])",
        "print(json.dumps([described, predicted, evaluated, out.getvalue()]))",
    ]
    code = "\n".join(steps) + "\n"
    result = run_importing_none_of(("tensorflow", "keras"), code)
    assert result.returncode == 0, result.stderr.decode()
    described, predicted, evaluated, out = json.loads(result.stdout)
    # your strings are crops of one number: the run reads those, the shipped page model pages
    crops = f"crops of one number: {run / 'lines.onnx'}"
    assert described["page_reader"] == f"default line model (lines.onnx); {crops}"
    assert described["classifier"].startswith("default")
    assert predicted == 0 and evaluated == 0
    printed = [json.loads(line) for line in out.splitlines()]
    assert str(run / "lines.onnx") in json.dumps(printed[0])
    assert printed[-1]["strings"] == STRINGS and len(printed[-1]["skipped"]) == 1


BAD_LAYOUTS = {
    "no labels": ({}, "no such file"),
    "other columns": ({"labels.csv": "name,digits\na.png,1\n"}, "no column file or text"),
    "not digits": ({"labels.csv": "file,text\na.png,12x\n", "a.png": ""}, "is not digits"),
    "missing": ({"labels.csv": "file,text\nmissing.png,12\n"}, "lists files that are not there"),
}


def test_a_bad_strings_folder_is_refused_before_tensorflow_loads(tmp_path):
    cases = {}
    for name, (files, _) in BAD_LAYOUTS.items():
        folder = tmp_path / name.replace(" ", "-")
        folder.mkdir()
        for file, content in files.items():
            (folder / file).write_text(content)
        cases[name] = ["--strings", str(folder), "--out", str(tmp_path / "run")]
    results = cli_results_without_tensorflow("train-lines", cases)
    for name, (_, message) in BAD_LAYOUTS.items():
        status, err = results[name]
        assert status == 2 and message in err, (name, err)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--width", "8"], "leave out --width"),
        (["--init", "nowhere"], "not a train-lines run"),
        (["--val-share", "1.5"], "val_share must be"),
        (["--augment", "3"], "augment must be"),
        (["--generated-share", "1"], "generated_share must be"),
    ],
)
def test_flags_that_do_not_apply_to_fine_tuning_are_refused(tmp_path, mnist_dir, argv, message):
    from digitrec.errors import DigitrecError

    strings = write_strings(tmp_path / "mine", mnist_dir, count=2)
    args = ["train-lines", "--strings", str(strings), "--out", str(tmp_path / "run"), *argv]
    from digitrec.cli import build_parser
    from digitrec.cli.train_lines import strings_recipe_from

    with pytest.raises(DigitrecError, match=message):
        strings_recipe_from(build_parser().parse_args(args))


def test_the_generated_share_of_a_batch_leaves_at_least_one_of_your_strings(tmp_path, mnist_dir):
    from digitrec.cli import build_parser
    from digitrec.cli.train_lines import strings_recipe_from

    assert StringsRecipe(batch_size=32).own_per_batch == 8  # 0.75 generated by default
    assert StringsRecipe(batch_size=32, generated_share=0.5).own_per_batch == 16
    assert StringsRecipe(batch_size=2, generated_share=0.9).own_per_batch == 1
    strings = write_strings(tmp_path / "mine", mnist_dir, count=2)
    args = ["train-lines", "--strings", str(strings), "--out", str(tmp_path / "run")]
    recipe = strings_recipe_from(build_parser().parse_args([*args, "--generated-share", "0.6"]))
    assert recipe.generated_share == 0.6


def test_a_run_recorded_before_the_generated_share_resumes_with_half_a_batch(tmp_path):
    from digitrec.training.line_settings import recorded_recipe

    recorded = asdict(StringsRecipe("mine", "digest"))
    del recorded["generated_share"]
    (tmp_path / RECIPE_FILE).write_text(json.dumps({"fine_tuning": recorded}))
    assert recorded_recipe(tmp_path).generated_share == 0.5


def test_the_split_holds_out_the_same_share_of_every_length(tmp_path):
    from digitrec.training.line_strings import StringImage, split_strings

    strings = [StringImage(Path(f"{k}.png"), "1" * (2 + k % 3), None) for k in range(30)]
    strings.append(StringImage(Path("lone.png"), "1" * 9, None))  # counted with length 4
    train, val = split_strings(strings, 0.2, seed=1)
    assert len(val) == 6 and len(train) == 25
    assert sorted(min(len(s.text), 4) for s in val) == [2, 2, 3, 3, 4, 4]
    again, _ = split_strings(strings, 0.2, seed=1)
    assert again == train
    assert split_strings(strings, 0.2, seed=2)[1] != val


def test_a_resume_with_other_labels_is_refused(tmp_path):
    from digitrec.errors import DigitrecError
    from digitrec.training.line_settings import labels_digest
    from digitrec.training.line_strings import load_strings

    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "labels.csv").write_text("file,text\na.png,12\n")
    recipe = StringsRecipe(str(folder), labels_digest(folder))
    (folder / "labels.csv").write_text("file,text\na.png,13\n")
    with pytest.raises(DigitrecError, match="changed since this run started"):
        load_strings(recipe, stride=4)


def test_a_distorted_string_keeps_its_height_and_whole_frames_and_strength_0_changes_nothing():
    from digitrec.training.line_batches import distorted

    image = np.zeros((32, 96), np.float32)
    image[8:24, 10:80] = 1
    rng = np.random.default_rng(0)
    widths = set()
    for _ in range(20):
        out = distorted(image, rng, 1.0, stride=4)
        assert out.shape[0] == 32 and out.shape[1] % 4 == 0 and out.max() <= 1
        assert abs(out.sum() / image.sum() - 1) < 0.5  # the ink moved, not lost
        widths.add(out.shape[1])
    assert len(widths) > 1
    np.testing.assert_allclose(distorted(image, rng, 0.0, stride=4), image)


@pytest.mark.parametrize("shipped", ["default", "documents"])
def test_init_names_a_shipped_line_model_its_keras_file_settings_and_filter(shipped):
    """``--init documents`` starts from the documents line model as ``--init default`` from the
    default's: its Keras weights, its architecture and its line filter."""
    from digitrec.read.line_reader import LineReader
    from digitrec.training.line_settings import (
        SHIPPED_FILTERS,
        SHIPPED_KERAS,
        init_model_file,
        init_settings,
    )
    from digitrec.training.line_strings import init_files

    lines, line_filter, record = init_files(shipped)
    assert lines == init_model_file(shipped) and lines.name == SHIPPED_KERAS[shipped]
    assert line_filter.name == SHIPPED_FILTERS[shipped] and record is None
    recorded = LineReader.load(shipped).metadata["training_settings"]
    assert init_settings(shipped).source == recorded.get("source", "pages")


def test_fine_tuning_your_strings_starts_from_the_crop_model_unless_told(tmp_path, mnist_dir):
    """Your strings are crops of one number: without --init they fine-tune the shipped model
    that reads such crops for the default."""
    from digitrec.cli import build_parser
    from digitrec.cli.train_lines import strings_recipe_from
    from digitrec.read.loader import CROP_LINE_MODEL

    strings = write_strings(tmp_path / "mine", mnist_dir, count=2)
    args = ["train-lines", "--strings", str(strings), "--out", str(tmp_path / "run")]
    assert strings_recipe_from(build_parser().parse_args(args)).init == CROP_LINE_MODEL
    given = strings_recipe_from(build_parser().parse_args([*args, "--init", "default"]))
    assert CROP_LINE_MODEL == "documents" and given.init == "default"


def test_the_generated_lines_are_written_with_the_real_set_the_starting_model_learned(
    tmp_path, monkeypatch, tiny, real_sets, capsys
):
    """Fine-tuning keeps what the starting model learned: its generated lines are written with
    CVL's train writers too where the set is found, and with the dataset alone (saying why)
    where it is not."""
    from dataclasses import replace

    from digitrec.data import Dataset
    from digitrec.realdigits import REAL_DIR_ENV
    from digitrec.training.line_settings import init_settings
    from digitrec.training.line_strings import generated_digits

    info, _, arrays = tiny
    data = Dataset(info, *arrays.values())
    settings = replace(init_settings("documents"), val_size=10)
    assert settings.real == "cvl"
    monkeypatch.setenv(REAL_DIR_ENV, str(real_sets))
    with_cvl = generated_digits(settings, data, verbose=True)
    assert (with_cvl.writers >= 0).sum() == settings.real_repeat * 7000
    monkeypatch.setenv(REAL_DIR_ENV, str(tmp_path))
    alone = generated_digits(settings, data, verbose=True)
    assert len(alone.images) == len(arrays["train_images"]) - 10 and (alone.writers == -1).all()
    assert "cvl_train.npz: no such file" in capsys.readouterr().out
