"""Evaluation: scikit-learn metrics, the Markdown report and its figures, and the CLI."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digitrec.errors import ModelError
from digitrec.training.evaluate import classification_metrics, evaluate

FIGURES = ("learning_curves.png", "confusion_matrix.png", "mistakes.png")


@pytest.fixture
def tiny_run(tiny_registered, tmp_path):
    """A finished 2-epoch LeNet-5 run on the tiny dataset: (run_dir, data_dir)."""
    from digitrec.training.config import resolve_config
    from digitrec.training.train import train

    directory = tiny_registered
    config = resolve_config("lenet5", dataset="tiny", epochs=2, batch_size=16, val_size=10)
    return train(config, tmp_path / "run", directory, verbose=False), directory


def test_metrics_match_a_hand_counted_example():
    labels = np.array([0, 0, 1, 1, 2])
    probs = np.eye(3)[[0, 1, 1, 1, 0]] * 0.9 + 0.1 / 3
    result = classification_metrics(labels, probs, ("a", "b", "c"))
    assert result["test_accuracy"] == pytest.approx(3 / 5)
    assert result["test_errors"] == 2
    assert result["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert result["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert result["per_class"]["a"]["recall"] == pytest.approx(1 / 2)
    assert result["per_class"]["c"]["f1"] == 0
    assert result["macro_recall"] == pytest.approx((0.5 + 1 + 0) / 3)


def test_report_has_valid_figures_and_the_metrics(tiny_run, tmp_path):
    run_dir, data_dir = tiny_run
    result = evaluate(run_dir, data_dir=data_dir, out=tmp_path / "report")
    report = (tmp_path / "report" / "report.md").read_text()
    for name in FIGURES:
        path = tmp_path / "report" / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(path) as image:
            image.verify()
        assert f"]({name})" in report
    stored = json.loads((run_dir / "metrics.json").read_text())
    assert result["test_accuracy"] == pytest.approx(stored["test_accuracy"])
    assert f"{result['test_accuracy']:.4%}" in report


def keras_accuracy(source, data_dir, tta=False):
    """The accuracy of a Keras model on the tiny test set, counted here from its predictions."""
    from digitrec.data import load_dataset
    from digitrec.training.saved_models import load_keras, predict_keras

    model, _ = load_keras(source, tta)
    data = load_dataset("tiny", data_dir, download=False, progress=False)
    predicted = predict_keras(model, data.test_images).argmax(axis=1)
    return float(np.mean(predicted == data.test_labels))


def test_cli_json_has_the_keys_of_metrics_json_rounded_and_progress_on_stderr(tiny_run, capsys):
    from digitrec.cli import main

    run_dir, data_dir = tiny_run
    assert main(["evaluate", str(run_dir), "--json", "--data-dir", str(data_dir)]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    stored = json.loads((run_dir / "metrics.json").read_text())
    evaluation = set(stored) - {"train_seconds", "epochs", "history"}
    assert set(printed) == evaluation and "accuracy" not in printed
    assert printed["test_accuracy"] == pytest.approx(keras_accuracy(run_dir, data_dir))
    assert len(printed["confusion_matrix"]) == 10
    assert "classifying the 20 test images" in captured.err and "\x1b" not in captured.err
    for result in (printed, stored):
        assert all(significant_digits(value) <= 6 for value in floats_in(result)), result


def floats_in(value):
    """Every float in a JSON value."""
    if isinstance(value, float):
        yield value
    elif isinstance(value, dict | list):
        for item in value.values() if isinstance(value, dict) else value:
            yield from floats_in(item)


def significant_digits(value: float) -> int:
    """How many significant digits ``repr`` needs for ``value``."""
    mantissa = repr(value).lower().split("e")[0].lstrip("-").replace(".", "").strip("0")
    return len(mantissa)


def test_rounding_keeps_six_significant_digits_of_every_float():
    from digitrec.training.evaluate import rounded

    value = {"a": 0.123456789, "b": [1 / 3, 2, np.float32(0.1)], "c": 12345678.9, "d": "x"}
    assert rounded(value) == {"a": 0.123457, "b": [0.333333, 2, 0.1], "c": 12345700.0, "d": "x"}
    assert significant_digits(0.123456789) == 9 and significant_digits(0.000123) == 3


def test_a_model_file_gets_a_report_only_where_asked(tiny_run, tmp_path, monkeypatch, capsys):
    from digitrec.cli import main

    run_dir, data_dir = tiny_run
    model = tmp_path / "models" / "copy.keras"
    model.parent.mkdir()
    model.write_bytes((run_dir / "model.keras").read_bytes())
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    result = evaluate(model, "tiny", data_dir)
    assert "report" not in result
    assert result["test_accuracy"] == pytest.approx(keras_accuracy(model, data_dir))
    assert main(["evaluate", str(model), "--dataset", "tiny", "--data-dir", str(data_dir)]) == 0
    assert "report          none written (--out DIR writes one)" in capsys.readouterr().out
    assert list((tmp_path / "work").iterdir()) == [] and os.listdir(model.parent) == ["copy.keras"]
    result = evaluate(model, "tiny", data_dir, out=tmp_path / "asked")
    assert result["report"] == str(tmp_path / "asked" / "report.md")


def test_unreadable_model_file_is_a_model_error(tmp_path):
    bad = tmp_path / "broken.keras"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelError, match=r"broken\.keras: cannot load model"):
        evaluate(bad)
    with pytest.raises(ModelError, match="no model found"):
        evaluate(tmp_path / "missing.keras")


def test_perturbations_shift_by_three_pixels_and_rotate_about_the_centre():
    from digitrec.training.evaluate import perturbations

    image = np.zeros((1, 28, 28), np.uint8)
    image[0, 10:18, 13:15] = 255  # a vertical bar through the centre
    distorted = {name: distort(image) for name, distort in perturbations().items()}
    assert all(d.shape == image.shape and d.dtype == np.uint8 for d in distorted.values())
    np.testing.assert_array_equal(distorted["shifted 3 px right"][0, 10:18, 16:18], 255)
    np.testing.assert_array_equal(distorted["shifted 3 px up"][0, 7:15, 13:15], 255)
    rotated = distorted["rotated +15°"][0]
    rows, cols = np.nonzero(rotated > 127)
    assert np.polyfit(rows, cols, 1)[0] == pytest.approx(np.tan(np.radians(15)), abs=0.15)


def test_cli_perturb_reports_accuracy_on_distorted_digits(tiny_run, capsys):
    from digitrec.cli import main

    run_dir, data_dir = tiny_run
    assert main(["evaluate", str(run_dir), "--data-dir", str(data_dir), "--perturb"]) == 0
    assert "rotated -15°" in capsys.readouterr().out
    report = (run_dir / "report.md").read_text()
    assert "## Robustness" in report and "shifted 3 px down" in report


def test_tta_report_goes_beside_the_run_and_needs_a_keras_model(tiny_run):
    run_dir, data_dir = tiny_run
    result = evaluate(run_dir, data_dir=data_dir, tta=True)
    assert result["report"] == str(run_dir / "tta" / "report.md")
    assert result["test_accuracy"] == pytest.approx(keras_accuracy(run_dir, data_dir, tta=True))
    with pytest.raises(ModelError, match="test-time augmentation needs a Keras model"):
        evaluate("default", tta=True)


def own_folder(root):
    """Two typeset images of each digit, dark on white, and one file that is no image."""
    from synthetic import font_digit

    for digit in range(10):
        (root / str(digit)).mkdir(parents=True)
        for size in (60, 90):
            glyph = Image.fromarray(255 - font_digit(digit)).resize((size, size))
            glyph.save(root / str(digit) / f"{size}.png")
    (root / "4" / "notes.png").write_text("not an image")
    return root


def counted_accuracy(classify, root):
    """Accuracy counted here: every readable image read as predict --single reads it."""
    from digitrec.read.image_folders import read_image_folders

    data = read_image_folders(root)
    return float(np.mean(classify(data).argmax(axis=1) == data.labels)), len(data)


def test_evaluate_on_your_folders_gives_metrics_confusion_and_report_for_keras(tiny_run, tmp_path):
    from digitrec.training.saved_models import load_keras, predict_keras

    run_dir, _ = tiny_run
    root = own_folder(tmp_path / "mine")
    result = evaluate(run_dir, images=[root], out=tmp_path / "report")
    model = load_keras(run_dir)[0]
    expected, n = counted_accuracy(lambda d: predict_keras(model, d.uint8_images()), root)
    assert result["test_accuracy"] == pytest.approx(expected)
    assert np.sum(result["confusion_matrix"]) == n == 20
    assert [m["support"] for m in result["per_class"].values()] == [2] * 10
    assert len(result["skipped"]) == 1 and "notes.png" in result["skipped"][0]
    assert result["report"] == str(tmp_path / "report" / "report-images-mine.md")
    assert "your images in" in Path(result["report"]).read_text()


def test_a_report_on_your_images_goes_beside_the_runs_own_and_never_says_test(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    own_report = (run_dir / "report.md").read_bytes()
    figures = {name: (run_dir / name).read_bytes() for name in FIGURES}
    result = evaluate(run_dir, images=[own_folder(tmp_path / "my digits")])
    report = run_dir / "report-images-my_digits.md"
    assert result["report"] == str(report)
    assert (run_dir / "report.md").read_bytes() == own_report
    assert {name: (run_dir / name).read_bytes() for name in FIGURES} == figures
    text = report.read_text()
    assert "test" not in text.replace(str(tmp_path), "").lower() and "your images in" in text
    for figure in ("confusion_matrix", "mistakes"):
        name = f"report-images-my_digits-{figure}.png"
        assert f"]({name})" in text and (run_dir / name).read_bytes()[:4] == b"\x89PNG"


def test_evaluate_on_your_folders_reads_an_onnx_model_as_predict_does(tmp_path, capsys):
    from digitrec.cli import main
    from digitrec.read.recognizer import Recognizer

    root = own_folder(tmp_path / "mine")
    assert main(["evaluate", "default", "--images", str(root), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    recognizer = Recognizer.load("default")
    expected, _ = counted_accuracy(lambda d: recognizer.predict_proba(d.images[..., None]), root)
    assert printed["test_accuracy"] == pytest.approx(expected)
    # the shipped model reads typeset digits: all 20 at this seed, so one miss at most
    assert printed["test_accuracy"] >= 0.95
    assert main(["evaluate", "default", "--images", str(root)]) == 0
    text = capsys.readouterr().out
    assert "skipped         1 unreadable file\n" in text and "confused with" in text
    assert f"  {root / '4' / 'notes.png'}: " in text
    assert "test" not in text.replace(str(tmp_path), "")


def test_skipped_files_are_named_a_few_then_counted():
    from digitrec.cli.evaluate import print_skipped

    def printed(count: int) -> list[str]:
        with contextlib.redirect_stdout(io.StringIO()) as out:
            print_skipped([f"f{i}.png: not an image" for i in range(count)])
        return out.getvalue().splitlines()

    assert printed(0) == ["skipped         0 unreadable files"]
    assert printed(1) == ["skipped         1 unreadable file", "  f0.png: not an image"]
    many = printed(8)
    assert many[0] == "skipped         8 unreadable files" and many[1] == "  f0.png: not an image"
    assert len(many) == 7 and many[-1] == "  and 3 more"


def test_evaluate_refuses_images_together_with_a_dataset(tmp_path, capsys):
    from digitrec.cli import main

    assert main(["evaluate", "default", "--images", str(tmp_path), "--dataset", "mnist"]) == 2
    assert "give one" in capsys.readouterr().err
