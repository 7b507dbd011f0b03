"""The line filter: padding-invariant, learns from labelled line-finder crops, and is exported
inside the line model as a second output that the reader returns with every line."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
from synthetic import font_digit
from test_lines import strip_lines, tiny_run, tiny_settings  # noqa: F401  (fixtures)

from digitrec.errors import DigitrecError
from digitrec.synth.sheet import LineTruth
from digitrec.synth.style import TRAIN

keras = pytest.importorskip("keras")

FONT_DIGITS = np.stack([font_digit(d) for d in range(10)])


def test_a_line_reads_the_same_alone_and_in_a_padded_batch():
    from digitrec.read.line_reader import HEIGHT, pad_batch
    from digitrec.training.line_filter import build_line_filter

    keras.utils.set_random_seed(0)
    model = build_line_filter(4)
    rng = np.random.default_rng(0)
    lines = [rng.random((HEIGHT, width), dtype=np.float32) for width in (36, 52, 100)]
    batched = np.asarray(model(pad_batch(lines)))[:, 0]
    alone = [float(np.asarray(model(pad_batch([line])))[0, 0]) for line in lines]
    np.testing.assert_allclose(batched, alone, rtol=1e-5, atol=1e-6)
    assert len(set(np.round(alone, 6))) == 3  # the lines do differ


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        ((0, 0, 100, 30), True),  # the whole true line
        ((10, 5, 60, 25), True),  # within it
        ((0, 0, 200, 40), True),  # it, with a wide margin
        ((0, 100, 100, 130), False),  # below it
        ((90, 0, 300, 30), None),  # a sliver of it and much else
    ],
)
def test_found_boxes_hold_digits_by_the_share_of_a_true_line_they_cover(box, expected):
    from digitrec.training.filter_crops import holds_digits

    truth = LineTruth("123", (0, 0, 100, 30), [])
    assert holds_digits(box, [truth]) is expected


def test_page_crops_are_prepared_lines_labelled_with_and_without_digits():
    from digitrec.read.line_reader import HEIGHT
    from digitrec.training.filter_crops import page_crops

    images, targets = page_crops(FONT_DIGITS, np.arange(10), 1, 0, "train")
    assert len(images) == len(targets) > 0 and set(targets) == {0.0, 1.0}
    assert all(image.dtype == np.uint8 and image.shape[0] == HEIGHT for image in images)


def test_page_crops_made_by_worker_processes_are_those_made_here():
    from digitrec.training.filter_crops import page_crops

    here = page_crops(FONT_DIGITS, np.arange(10), 2, 5, "train")
    there = page_crops(FONT_DIGITS, np.arange(10), 2, 5, "train", workers=2)
    np.testing.assert_array_equal(here[1], there[1])
    assert len(here[0]) == len(there[0])
    for mine, theirs in zip(here[0], there[0], strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_drawing_pad_images_hold_dark_digits_on_white_that_the_classifier_finds():
    from digitrec.training.filter_crops import digit_region, drawn_crops, drawn_image

    rng = np.random.default_rng(0)
    for _ in range(5):
        image = drawn_image(FONT_DIGITS, rng)
        assert image.dtype == np.float32 and image.min() == 0 and image.max() == 1
        assert np.median(image) == 1  # mostly paper
        region, box = digit_region(image)
        assert region.shape[0] > box[3] - box[1]  # with a margin
    images, targets = drawn_crops(FONT_DIGITS, 6, seed=1)
    assert len(images) == 6 and set(targets) == {1.0}


def test_filter_settings_refuse_empty_runs():
    from digitrec.training.line_filter import FilterSettings

    with pytest.raises(DigitrecError, match="epochs must be at least 1, not 0"):
        FilterSettings(epochs=0).check()
    with pytest.raises(DigitrecError, match="low_resolution in"):
        FilterSettings(low_resolution=2.0).check()


def test_training_refuses_a_folder_that_is_no_line_run(tmp_path):
    from digitrec.training.line_filter import FilterSettings, train_line_filter

    with pytest.raises(DigitrecError, match="not a line training run"):
        train_line_filter(tmp_path, FilterSettings())


def test_a_trained_filter_is_exported_as_the_line_models_second_output(tiny_run, tmp_path):  # noqa: F811
    from digitrec.read.line_reader import LineReader, pad_batch, prepare_line
    from digitrec.training.line_export import export_line_model
    from digitrec.training.line_filter import FilterSettings, train_line_filter

    run, data_dir = tiny_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    settings = FilterSettings(
        width=2, pages_per_layout=1, val_pages_per_layout=1, drawn=4, epochs=2
    )
    train_line_filter(copy, settings, data_dir, verbose=False)
    record = json.loads((copy / "filter.json").read_text())
    assert record["train_crops"] > 0 and len(record["history"]["val_loss"]) == 2
    assert record["best_epoch"] == 1 + int(np.argmin(record["history"]["val_loss"]))
    out = export_line_model(copy, tmp_path / "line.onnx", data_dir, strip_lines)
    reader = LineReader.load(out)
    assert reader.metadata["line_filter"]["train_crops"] == record["train_crops"]
    assert reader.metadata["parity"]["max_difference"] <= 1e-4
    samples = list(strip_lines(FONT_DIGITS, np.arange(10), 3, seed=1))
    line_filter = keras.saving.load_model(copy / "filter.keras")
    for sample, reading in zip(samples, reader.read_lines([s.image for s in samples]), strict=True):
        alone = pad_batch([prepare_line(sample.image).image])
        expected = float(np.asarray(line_filter(alone))[0, 0])
        assert reading.writing == pytest.approx(expected, abs=1e-4)
        assert reader.writing(sample.image) == pytest.approx(reading.writing, abs=1e-6)
    # a model without a filter reads lines with no probability of writing
    plain = export_line_model(run, tmp_path / "plain.onnx", data_dir, strip_lines)
    assert LineReader.load(plain).read_lines([samples[0].image])[0].writing is None
    assert LineReader.load(plain).writing(samples[0].image) is None


def test_a_stopped_training_takes_up_the_crops_it_made(tiny_run, tmp_path, monkeypatch):  # noqa: F811
    from digitrec.training import line_filter

    run, data_dir = tiny_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    settings = line_filter.FilterSettings(
        width=2, pages_per_layout=1, val_pages_per_layout=1, drawn=4
    )
    made, make = [], line_filter.page_crops
    monkeypatch.setattr(line_filter, "page_crops", lambda *a: made.append(a) or make(*a))
    real_build = line_filter.build_line_filter
    monkeypatch.setattr(line_filter, "build_line_filter", lambda *_: pytest.fail("stopped"))
    with pytest.raises(pytest.fail.Exception, match="stopped"):
        line_filter.train_line_filter(copy, settings, data_dir, verbose=False, workers=1)
    assert len(made) == 2 and (copy / line_filter.CROPS_FILE).is_file()
    assert not (copy / line_filter.FILTER_MODEL).exists()
    monkeypatch.setattr(line_filter, "build_line_filter", real_build)
    line_filter.train_line_filter(copy, settings, data_dir, verbose=False)
    assert len(made) == 2  # no page made again
    assert (copy / line_filter.FILTER_MODEL).is_file()
    assert not (copy / line_filter.CROPS_FILE).exists()


def test_only_the_training_pages_are_drawn_in_other_writers_shapes(tiny_run, tmp_path, monkeypatch):  # noqa: F811
    from digitrec.training import line_filter

    run, data_dir = tiny_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    styles, make = [], line_filter.page_crops
    monkeypatch.setattr(line_filter, "page_crops", lambda *a: styles.append(a[4]) or make(*a))
    monkeypatch.setattr(line_filter, "build_line_filter", lambda *_: pytest.fail("stopped"))
    plain = line_filter.FilterSettings(width=2, pages_per_layout=1, val_pages_per_layout=1, drawn=4)
    shaped = replace(plain, elastic=2.0, low_resolution=0.5, finest_pen=-0.8)
    for settings in (plain, shaped):
        with pytest.raises(pytest.fail.Exception, match="stopped"):
            line_filter.train_line_filter(copy, settings, data_dir, verbose=False, workers=1)
    assert len(styles) == 4  # the shaped run made its own crops, not the plain run's kept ones
    assert styles[1] == styles[3] == "validation"  # the crops that choose the epoch: plain
    assert styles[0].hand.elastic == 0 and styles[0].hand.low_resolution == 0
    assert styles[2].hand.elastic == 2.0 and styles[2].hand.low_resolution == 0.5
    assert styles[0].hand.pen == TRAIN.hand.pen and styles[2].hand.pen[0] == -0.8
