"""The CTC line recognizer: preprocessing, decoding, boxes, training, export, and reading."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import write_tiny_dataset
from synthetic import font_digit

from digitrec.errors import DigitrecError, ImageError, ModelError
from digitrec.read.line_reader import (
    BLANK,
    HEIGHT,
    STRIDE,
    Alignment,
    PreparedLine,
    digit_boxes,
    greedy_decode,
    pad_batch,
    prepare_line,
)
from digitrec.synth.style import TRAIN

FONT_DIGITS = np.stack([font_digit(d) for d in range(10)])


@dataclass
class Line:
    image: np.ndarray
    text: str


def strip_lines(digits: np.ndarray, labels: np.ndarray, count: int, seed: int, style: str = ""):
    """A tiny line source: 1 to 4 of the given 28x28 digits side by side, dark on light."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        picks = rng.integers(0, len(digits), rng.integers(1, 5))
        strip = np.pad(np.concatenate([digits[i] for i in picks], axis=1), 4)
        yield Line(255 - strip, "".join(str(labels[i]) for i in picks))


def posteriors(best: list[int], peak: float = 0.9) -> np.ndarray:
    """Frame posteriors whose most probable class per frame is ``best``."""
    frames = np.full((len(best), BLANK + 1), (1 - peak) / BLANK)
    frames[np.arange(len(best)), best] = peak
    return frames


# --- preprocessing -------------------------------------------------------------------------------


def test_prepare_line_scales_to_the_height_and_pads_the_width_to_the_stride():
    line = prepare_line(np.full((50, 123), 255, np.uint8))
    assert line.image.dtype == np.float32
    assert line.image.shape == (HEIGHT, 80)  # 123 * 32 / 50 = 78.7 -> 79 -> 80
    assert line.scale == pytest.approx(HEIGHT / 50)
    assert line.shape == (50, 123)


def test_prepare_line_makes_ink_white_on_black_whatever_the_polarity():
    dark_on_light = np.full((40, 80), 230, np.uint8)
    dark_on_light[10:30, 20:26] = 20
    for crop in (dark_on_light, 255 - dark_on_light):
        image = prepare_line(crop).image
        assert image[8:24, 17:20].min() == pytest.approx(1.0)  # the stroke, scaled by 0.8
        assert image[:, :12].max() < 1e-6 and image[:, 24:].max() < 1e-6


def test_prepare_line_stretches_faint_ink_to_full_contrast_but_not_noise():
    faint = np.full((40, 80), 200, np.uint8)
    faint[10:30, 20:26] = 150
    assert prepare_line(faint).image.max() == pytest.approx(1.0)
    noise = np.random.default_rng(0).integers(120, 136, (40, 80)).astype(np.uint8)
    assert prepare_line(noise).image.max() < 0.5


def test_prepare_line_flattens_uneven_light():
    paper = np.linspace(250, 110, 160)[None, :].repeat(40, axis=0)  # light fading to the right
    paper[10:30, 130:135] -= 90  # a stroke where the paper is darkest
    image = prepare_line(paper.astype(np.uint8)).image
    assert image[8:24, 105:107].min() == pytest.approx(1.0)
    assert image[:, :100].max() < 0.1


def test_prepare_line_rejects_what_is_no_line_crop():
    with pytest.raises(ImageError, match="2-D"):
        prepare_line(np.zeros((1, 50)))
    with pytest.raises(ImageError, match="over the limit"):
        prepare_line(np.zeros((4, 2000)))


def test_pad_batch_pads_every_line_to_the_longest_with_background():
    batch = pad_batch([np.ones((HEIGHT, 8)), np.ones((HEIGHT, 16))])
    assert batch.shape == (2, HEIGHT, 16, 1) and batch.dtype == np.float32
    assert batch[0, :, 8:].max() == 0 and batch[0, :, :8].min() == 1


# --- decoding and boxes --------------------------------------------------------------------------


def test_greedy_decode_collapses_repeats_and_drops_blanks():
    result = greedy_decode(posteriors([BLANK, 3, 3, BLANK, BLANK, 7, 1, 1, BLANK]))
    assert [(a.label, a.first, a.end) for a in result] == [(3, 1, 3), (7, 5, 6), (1, 6, 8)]


def test_greedy_decode_keeps_a_repeated_digit_separated_by_a_blank():
    result = greedy_decode(posteriors([5, 5, BLANK, 5, BLANK, 0, BLANK, BLANK, 0]))
    assert [a.label for a in result] == [5, 5, 0, 0]


def test_greedy_decode_gives_each_digit_its_peak_posterior():
    frames = posteriors([BLANK, 2, 2, BLANK])
    frames[1, 2], frames[1, BLANK] = 0.6, 0.3
    assert [a.confidence for a in greedy_decode(frames)] == pytest.approx([0.9])
    assert greedy_decode(posteriors([BLANK, BLANK])) == []


def test_digit_boxes_cover_each_digits_ink_in_the_crops_pixels_ignoring_rules():
    image = np.zeros((HEIGHT, 64), np.float32)
    image[6:24, 8:20] = 1  # a digit around frames 2 to 4
    image[10:28, 22:30] = 1  # a digit touching no other, around frames 5 to 7
    image[30, :] = 1  # an underline across the line: not a digit's ink
    line = PreparedLine(image, scale=0.5, shape=(64, 128))  # the crop was twice as big
    alignments = [Alignment(4, 3, 4, 0.9), Alignment(1, 6, 7, 0.8)]
    assert digit_boxes(line, alignments) == [(16, 12, 40, 48), (44, 20, 60, 56)]


def test_digit_boxes_split_touching_digits_between_their_frames():
    image = np.zeros((HEIGHT, 48), np.float32)
    image[8:24, 4:40] = 1  # two digits written as one blob
    line = PreparedLine(image, scale=1.0, shape=(HEIGHT, 48))
    boxes = digit_boxes(line, [Alignment(7, 2, 3, 0.9), Alignment(7, 7, 8, 0.9)])
    assert boxes == [(4, 8, 20, 24), (20, 8, 40, 24)]  # split halfway between frames 2 and 7


# --- the model and its training ------------------------------------------------------------------

keras = pytest.importorskip("keras")


def tiny_settings(**overrides):
    from digitrec.training.line_model import LineTrainSettings

    values = dict(width=4, units=16, dropout=0.0, epochs=2, steps_per_epoch=3, batch_size=4)
    values.update(val_lines=8, learning_rate=1e-2, schedule="constant")
    return LineTrainSettings(**{**values, **overrides})


def test_line_model_gives_one_frame_per_stride_columns():
    from digitrec.training.line_model import build_line_model

    for head in ("lstm", "conv"):
        for stride in (2, STRIDE):
            model = build_line_model(tiny_settings(head=head, stride=stride))
            assert model(np.zeros((2, HEIGHT, 40, 1), np.float32)).shape == (2, 40 // stride, 11)


def test_a_stride_other_than_2_or_4_is_refused():
    with pytest.raises(DigitrecError, match="stride must be one of 2, 4, not 3"):
        tiny_settings(stride=3).check()


def test_batches_count_frames_at_the_models_stride():
    from digitrec.training.line_batches import batch_arrays, prepared

    samples = list(strip_lines(FONT_DIGITS, np.arange(10), 5, seed=9))
    for stride in (2, STRIDE):
        x, y = batch_arrays(list(prepared(samples, stride)), stride)
        assert x.shape[2] % stride == 0
        frames = [line.image.shape[1] // stride for line, _ in prepared(samples, stride)]
        assert y[:, 1].tolist() == frames


def test_a_tiny_line_model_lowers_its_ctc_loss_in_a_few_steps():
    from digitrec.training.line_batches import batches
    from digitrec.training.line_model import build_line_model
    from digitrec.training.line_training import compile_line_model

    keras.utils.set_random_seed(0)
    samples = strip_lines(FONT_DIGITS, np.arange(10), 8, seed=0)
    x, y = next(batches(samples, 8, np.random.default_rng(0)))
    settings = tiny_settings(head="conv")
    model = build_line_model(settings)
    compile_line_model(model, settings)
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=30, batch_size=8, verbose=0)
    assert model.evaluate(x, y, verbose=0) < 0.5 * before


def test_ctc_loss_of_a_line_without_digits_is_that_of_all_blanks():
    from digitrec.training.line_batches import encode_targets
    from digitrec.training.line_model import LineCTCLoss

    frames = np.full((2, 6, BLANK + 1), 0.01, np.float32)
    frames[..., BLANK] = 0.9
    targets = encode_targets(["", ""], [6, 6])
    assert targets.tolist() == [[0, 6, 0], [0, 6, 0]]
    assert float(LineCTCLoss()(targets, frames)) == pytest.approx(-6 * np.log(0.9), rel=1e-4)


def test_line_settings_refuse_an_unknown_head_and_empty_runs():
    with pytest.raises(DigitrecError, match="unknown head"):
        tiny_settings(head="transformer").check()
    with pytest.raises(DigitrecError, match="at least 1"):
        tiny_settings(epochs=0).check()
    with pytest.raises(DigitrecError, match="seed must be from 0 to 4294967295, not 4294967296"):
        tiny_settings(seed=2**32).check()
    with pytest.raises(DigitrecError, match="unknown precision"):
        tiny_settings(precision="float16").check()
    for shapes in ({"elastic": -1.0}, {"low_resolution": 1.5}):
        with pytest.raises(DigitrecError, match="low_resolution"):
            tiny_settings(**shapes).check()
    for pen in (-1.5, 1.0):
        with pytest.raises(DigitrecError, match="finest_pen"):
            tiny_settings(finest_pen=pen).check()


def test_only_the_training_lines_are_drawn_with_other_writers_shapes(tmp_path, tiny_registered):
    from digitrec.training.line_training import train_line_model

    styles = []

    def recording(*args, style):
        styles.append(style)
        return strip_lines(*args)

    settings = tiny_settings(
        dataset="tiny", val_size=20, elastic=2.0, low_resolution=0.3, finest_pen=-0.9
    )
    train_line_model(settings, tmp_path / "run", tiny_registered, recording, False, False)
    assert styles[0] == "train"  # the lines that choose the epoch: the plain training style
    assert len(styles) == 3 and all(style.hand.elastic == 2.0 for style in styles[1:])
    assert all(style.hand.low_resolution == 0.3 for style in styles[1:])
    assert all(style.hand.pen == (-0.9, TRAIN.hand.pen[1]) for style in styles[1:])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A line recognizer trained for two epochs of three steps on a tiny random dataset
    (registered while the module's tests run): the run directory and the data directory."""
    from digitrec.data import DATASETS
    from digitrec.training.line_training import train_line_model

    root = tmp_path_factory.mktemp("lines")
    info, _ = write_tiny_dataset(root / "tiny")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(DATASETS, info.name, info)
        settings = tiny_settings(dataset="tiny", val_size=20)
        yield (
            train_line_model(
                settings, root / "run", root / "tiny", strip_lines, False, background=False
            ),
            root / "tiny",
        )


def test_training_leaves_the_best_epochs_model_and_its_metrics(tiny_run):
    run, _ = tiny_run
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and len(metrics["history"]["val_exact"]) == 2
    assert metrics["val_exact"] == max(metrics["history"]["val_exact"])
    assert metrics["best_epoch"] == 1 + metrics["history"]["val_exact"].index(metrics["val_exact"])
    assert json.loads((run / "run.json").read_text())["settings"]["dataset"] == "tiny"
    assert (run / "model.keras").is_file()
    assert not list((run / "checkpoints").glob("*.keras"))


def test_training_resumes_an_interrupted_run_from_its_last_epoch(tmp_path, tiny_registered):
    from digitrec.training.line_batches import epoch_seed
    from digitrec.training.line_training import train_line_model

    seeds = []

    def killed_in_the_second_epoch(*args, **kwargs):
        seeds.append(args[3])
        if args[3] == epoch_seed(0, 1) and len(seeds) == 3:  # validation, epoch 1, epoch 2
            raise RuntimeError("killed")
        return strip_lines(*args, **kwargs)

    settings = tiny_settings(dataset="tiny", val_size=20)
    run = tmp_path / "run"
    with pytest.raises(Exception, match="killed"):
        train_line_model(
            settings, run, tiny_registered, killed_in_the_second_epoch, False, background=False
        )
    state = json.loads((run / "state.json").read_text())
    assert state["epoch"] == 1 and (run / state["checkpoint"]).is_file()
    seeds.clear()
    train_line_model(
        settings, run, tiny_registered, killed_in_the_second_epoch, False, background=False
    )
    assert seeds[1:] == [epoch_seed(0, 1)]  # after the validation lines: the second epoch only
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 2
    assert metrics["history"]["loss"][0] == state["history"]["loss"][0]


def test_training_refuses_a_run_directory_with_other_settings(tmp_path, tiny_registered):
    from digitrec.training.line_training import train_line_model

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"settings": asdict(tiny_settings(seed=5))}))
    settings = tiny_settings(dataset="tiny", val_size=20)
    with pytest.raises(DigitrecError, match="other settings"):
        train_line_model(settings, run, tiny_registered, strip_lines, False, background=False)


def test_a_run_recorded_before_newer_settings_resumes_with_their_defaults(
    tmp_path, tiny_registered
):
    from digitrec.training.line_training import train_line_model

    settings = tiny_settings(dataset="tiny", val_size=20)
    run = tmp_path / "run"
    run.mkdir()
    recorded = {k: v for k, v in asdict(settings).items() if k not in ("elastic", "low_resolution")}
    (run / "run.json").write_text(json.dumps({"settings": recorded}))
    train_line_model(settings, run, tiny_registered, strip_lines, False, background=False)
    assert (run / "metrics.json").is_file()


# --- export and reading --------------------------------------------------------------------------


def test_export_matches_keras_and_the_reader_reads_lines(tiny_run, tmp_path):
    from digitrec.read.line_reader import LineReader
    from digitrec.training.line_batches import batch_arrays, prepared
    from digitrec.training.line_export import export_line_model

    run, data_dir = tiny_run
    out = export_line_model(run, tmp_path / "line.onnx", data_dir, strip_lines)
    reader = LineReader.load(out)
    assert (reader.alphabet, reader.height, reader.stride) == ("0123456789", HEIGHT, STRIDE)
    assert reader.metadata["parity"]["max_difference"] <= 1e-4
    samples = list(strip_lines(FONT_DIGITS, np.arange(10), 5, seed=9))
    x, _ = batch_arrays(list(prepared(samples)))
    model = keras.saving.load_model(run / "model.keras")
    assert np.abs(reader.posteriors(x) - np.asarray(model(x))).max() <= 1e-4
    for sample, reading in zip(samples, reader.read_lines([s.image for s in samples]), strict=True):
        assert len(reading.digits) == len(reading.text)
        for digit in reading.digits:
            x0, y0, x1, y1 = digit.box
            assert 0 <= x0 < x1 <= sample.image.shape[1] and 0 <= y0 < y1 <= sample.image.shape[0]
            assert digit.posteriors.shape == (11,) and abs(digit.posteriors.sum() - 1) < 1e-4
            assert digit.posteriors.argmax() == digit.label
            assert digit.posteriors[digit.label] <= digit.confidence + 1e-6


def test_a_bfloat16_run_computes_its_convolutions_in_bfloat16_and_exports_float32(
    tmp_path, tiny_registered
):
    from digitrec.read.line_reader import LineReader
    from digitrec.training.line_batches import batch_arrays, prepared
    from digitrec.training.line_export import export_line_model
    from digitrec.training.line_model import build_line_model
    from digitrec.training.line_training import train_line_model
    from digitrec.training.models import as_float32, computes_in_float32

    settings = tiny_settings(dataset="tiny", val_size=20, epochs=1, precision="bfloat16")
    dtypes = {layer.name: layer.compute_dtype for layer in build_line_model(settings).layers}
    assert {dtypes[name] for name in dtypes if name.startswith("conv2d")} == {"bfloat16"}
    assert dtypes["posteriors"] == "float32"
    run = train_line_model(
        settings, tmp_path / "run", tiny_registered, strip_lines, False, background=False
    )
    trained = keras.saving.load_model(run / "model.keras")
    assert not computes_in_float32(trained)
    out = export_line_model(run, tmp_path / "line.onnx", tiny_registered, strip_lines)
    x, _ = batch_arrays(list(prepared(strip_lines(FONT_DIGITS, np.arange(10), 5, seed=9))))
    expected = np.asarray(as_float32(trained)(x))
    assert np.abs(LineReader.load(out).posteriors(x) - expected).max() <= 1e-4


def test_a_stride_2_run_exports_its_stride_and_the_reader_matches_keras(tmp_path, tiny_registered):
    from digitrec.read.line_reader import LineReader
    from digitrec.training.line_batches import batch_arrays, prepared
    from digitrec.training.line_export import export_line_model
    from digitrec.training.line_training import train_line_model

    settings = tiny_settings(dataset="tiny", val_size=20, epochs=1, stride=2)
    run = train_line_model(
        settings, tmp_path / "run", tiny_registered, strip_lines, False, background=False
    )
    reader = LineReader.load(
        export_line_model(run, tmp_path / "line.onnx", tiny_registered, strip_lines)
    )
    assert reader.stride == 2
    samples = list(strip_lines(FONT_DIGITS, np.arange(10), 5, seed=9))
    x, _ = batch_arrays(list(prepared(samples, 2)), 2)
    expected = np.asarray(keras.saving.load_model(run / "model.keras")(x))
    assert expected.shape[1] == x.shape[2] // 2
    assert np.abs(reader.posteriors(x) - expected).max() <= 1e-4
    for sample, reading in zip(samples, reader.read_lines([s.image for s in samples]), strict=True):
        for digit in reading.digits:
            x0, _, x1, _ = digit.box
            assert 0 <= x0 < x1 <= sample.image.shape[1]


def test_export_reports_lines_read_exactly_on_fresh_lines_as_well(tiny_run, tmp_path):
    from digitrec.read.line_reader import LineReader
    from digitrec.training.line_export import export_line_model, write_line_card

    run, data_dir = tiny_run
    seeds = []

    def recording(*args, **kwargs):
        seeds.append(args[3])
        return strip_lines(*args, **kwargs)

    out = export_line_model(run, tmp_path / "line.onnx", data_dir, recording)
    assert seeds == [0, 1]  # the lines that chose the epoch (the run's seed), then new ones
    meta = LineReader.load(out).metadata
    assert meta["fresh_val_lines"] == meta["val_lines"] == 8
    assert 0 <= meta["fresh_val_exact"] <= 1
    card = write_line_card(out, tmp_path / "card.md", {}).read_text()
    assert f"| {meta['fresh_val_exact']:.2%} of 8 |" in card


def test_the_model_card_of_a_run_exported_alone_gives_the_runs_settings(tiny_run, tmp_path):
    from digitrec.training.line_export import export_line_model, write_line_card

    run, data_dir = tiny_run
    out = export_line_model(run, tmp_path / "line.onnx", data_dir, strip_lines)
    card = write_line_card(out, tmp_path / "card.md", {}).read_text()
    assert "not made by ``digitrec train-lines``" in card  # no command to give
    listed = card.split("## Training settings\n\n```json\n")[1].split("```")[0]
    assert json.loads(listed) == json.loads((run / "run.json").read_text())["settings"]


def test_export_failing_its_parity_check_leaves_no_file(tiny_run, tmp_path, monkeypatch):
    from digitrec.training import line_export

    run, data_dir = tiny_run
    monkeypatch.setattr(line_export, "PARITY_TOLERANCE", -1.0)
    with pytest.raises(ModelError, match="failed its check"):
        line_export.export_line_model(run, tmp_path / "line.onnx", data_dir, strip_lines)
    assert list(tmp_path.iterdir()) == []


def test_line_reader_refuses_a_model_without_line_metadata(tmp_path):
    from digitrec.read.line_reader import LineReader
    from digitrec.training.line_model import build_line_model

    path = tmp_path / "bare.onnx"
    model = build_line_model(tiny_settings())
    model(np.zeros((1, HEIGHT, 8, 1), np.float32))  # Keras exports only a model that was called
    model.export(str(path), format="onnx", verbose=False)
    with pytest.raises(ModelError, match="not a digitrec line model"):
        LineReader.load(path)
    with pytest.raises(ModelError, match="cannot read"):
        LineReader.load(tmp_path / "missing.onnx")


def test_reading_lines_imports_no_tensorflow():
    code = "import sys, digitrec.read.line_reader; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
