"""Choosing the page reader's calibration and rejection on validation pages, and measuring it.

Validation pages are generated (``pages.page_sample``, style "validation") from the validation
split only (the last 5,000 training images), every layout alike; the test split is never used
here. On them, after the line finder and the line model have read every page once:

1. the temperature is fitted (``calibration.fit_temperature``) on the digits of found lines
   read with as many digits as the line they lie on holds, against that line's true digits;
2. the line threshold (a mean confidence) and, for a model with a line filter, the writing
   threshold (the filter's probability) are the pair of cuts that reads the most pages
   exactly (lines below either are taken for no writing: a printed word, a stamp, a scribble);
3. the digit threshold rejects the ``REJECTION_RATE`` least confident digits of the kept
   lines, as the single-digit classifier's does;
4. with a line filter, the region threshold (``reader="auto"``: the filter judging the ink that
   the single-digit classifier reads where the page reader read nothing) rejects the
   ``REJECTION_RATE`` least likely of ``REGION_DIGITS`` validation digits rendered as users'
   images, and is at most the writing threshold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from digitrec.data import load_dataset, split_validation
from digitrec.read.boxes import box_around, overlap
from digitrec.read.calibration import REJECTION_RATE, fit_temperature
from digitrec.read.line_finder import find_lines
from digitrec.read.line_reader import LineReader, LineReading
from digitrec.read.page_reader import PagePredictor, Rejection
from digitrec.read.recognizer import Recognizer
from digitrec.synth.pages import LAYOUTS, PageSample, page_sample
from digitrec.synth.sheet import LineTruth

LINE_CUTS = np.round(np.arange(0.0, 0.96, 0.025), 3)
REGION_DIGITS = 400  # validation digits as users' images, for the region threshold
WRITING_CUTS = np.round(np.arange(0.0, 0.96, 0.05), 3)


@dataclass
class ReadPage:
    """A validation page as the line model read it: each found line's box and reading."""

    sample: PageSample
    boxes: list[tuple[int, int, int, int]]
    readings: list[LineReading]


def validation_pages(per_layout: int, data_dir: str | Path | None = None, seed: int = 10_000):
    """``per_layout`` pages of every layout, from the validation digits; (layout, page)."""
    data = load_dataset("mnist", data_dir, progress=False)
    _, _, x_val, y_val = split_validation(data.train_images, data.train_labels, 5000)
    return [
        (layout, page_sample(layout, x_val, y_val, seed + i, style="validation"))
        for layout in LAYOUTS
        for i in range(per_layout)
    ]


def read_pages(predictor: PagePredictor, samples: list[PageSample]) -> list[ReadPage]:
    """Every page's found lines read once by the line model (no rejection yet)."""
    read = []
    for sample in samples:
        found = find_lines(sample.image)
        readings = predictor.reader.read_lines([line.crop for line in found])
        read.append(ReadPage(sample, [line.box for line in found], readings))
    return read


def fit_rejection(predictor: PagePredictor, pages: list[ReadPage]) -> tuple[Rejection, dict]:
    """The temperature and thresholds chosen on these pages, and the figures behind them."""
    frames, labels = [], []
    for page in pages:
        for box, reading in zip(page.boxes, page.readings, strict=True):
            truth = _truth_of(box, page.sample.lines)
            if truth is not None and len(truth.text) == len(reading.text):
                for digit, label in zip(reading.digits, truth.text, strict=True):
                    frames.append(digit.posteriors[:10] / max(digit.posteriors[:10].sum(), 1e-12))
                    labels.append(int(label))
    temperature = fit_temperature(np.asarray(frames), np.asarray(labels)) if frames else 1.0
    calibrated = PagePredictor(predictor.reader, Rejection(temperature))
    confidences = [calibrated.line_confidences(page.readings) for page in pages]
    filtered = predictor.reader.has_filter
    exact = {
        (float(writing), float(cut)): _exact(pages, confidences, cut, writing)
        for writing in (WRITING_CUTS if filtered else [0.0])
        for cut in LINE_CUTS
    }
    writing_threshold, line_threshold = max(exact, key=lambda cuts: (exact[cuts], -sum(cuts)))
    kept = [
        c
        for page, lines in zip(pages, confidences, strict=True)
        for reading, line in zip(page.readings, lines, strict=True)
        if _kept(reading, line, line_threshold, writing_threshold)
        for c in line
    ]
    digit_threshold = float(np.quantile(kept, REJECTION_RATE)) if kept else 0.0
    rejection = Rejection(temperature, digit_threshold, line_threshold, writing_threshold)
    figures = {
        "validation_pages": len(pages),
        "temperature_digits": len(labels),
        "val_page_exact_by_line_threshold": {
            cut: value for (writing, cut), value in exact.items() if writing == writing_threshold
        },
    }
    if filtered:
        figures["val_page_exact_by_writing_threshold"] = {
            writing: max(v for (w, _), v in exact.items() if w == writing)
            for writing in map(float, WRITING_CUTS)
        }
    return rejection, figures


def fit_region_threshold(
    predictor: PagePredictor, data_dir: str | Path | None = None, seed: int = 20_000
) -> tuple[float, int]:
    """The ``REJECTION_RATE`` quantile of the line filter's probability of writing on the ink
    the shipped classifier reads in ``REGION_DIGITS`` validation digits rendered as users'
    images (as ``reader="auto"`` asks it), and how many such regions there were."""
    from digitrec.read.decoding import array_to_gray
    from digitrec.read.imaging import find_digits
    from digitrec.synth.user_digits import user_digit_image

    data = load_dataset("mnist", data_dir, progress=False)
    _, _, x_val, _ = split_validation(data.train_images, data.train_labels, 5000)
    rng = np.random.default_rng(seed)
    scores = []
    for index in rng.choice(len(x_val), REGION_DIGITS, replace=False):
        gray = array_to_gray(np.asarray(user_digit_image(x_val[index], rng)))
        boxes = [crop.box for crop in find_digits(gray)]
        if boxes:
            scores.append(predictor.region_writing(gray, box_around(boxes)))
    return float(np.quantile(scores, REJECTION_RATE)), len(scores)


def _truth_of(box: tuple[int, int, int, int], truths: list[LineTruth]) -> LineTruth | None:
    """The true line a found line's box lies on: the one whose box it overlaps most, if any."""
    best, best_area = None, 0
    for truth in truths:
        common = overlap(box, truth.box)
        if common > best_area:
            best, best_area = truth, common
    return best


def _kept(reading: LineReading, confidences: list[float], cut: float, writing: float) -> bool:
    """Whether a line read with these digit confidences passes both cuts."""
    passes_filter = reading.writing is None or reading.writing >= writing
    return bool(confidences) and passes_filter and float(np.mean(confidences)) >= cut


def _exact(
    pages: list[ReadPage], confidences: list[list[list[float]]], cut: float, writing: float
) -> float:
    """The fraction of pages read exactly when lines of mean confidence below ``cut``, or of
    a probability of writing below ``writing``, are dropped (no digit rejected)."""
    right = 0
    for page, lines in zip(pages, confidences, strict=True):
        texts = [
            reading.text
            for reading, line in zip(page.readings, lines, strict=True)
            if _kept(reading, line, cut, writing)
        ]
        right += "\n".join(texts) == page.sample.text
    return right / max(len(pages), 1)


def page_accuracy(
    recognizer: Recognizer, pages: list[tuple[str, PageSample]], reader: str
) -> dict[str, Any]:
    """Per layout, the fraction of pages read exactly by ``reader``; for pages without digits,
    the fraction that gave no digit at all."""
    right: dict[str, list[bool]] = {}
    for layout, page in pages:
        reading = recognizer.read(page.image, reader=reader)
        right.setdefault(layout, []).append(reading.text == page.text)
    return {layout: float(np.mean(marks)) for layout, marks in right.items()}


def rejection_metadata(rejection: Rejection, figures: dict) -> dict[str, Any]:
    """The metadata keys the predictor reads, and the figures behind them."""
    return {**asdict(rejection), "rejection_figures": figures}


def store_rejection(
    model: str | Path, per_layout: int, data_dir: str | Path | None = None
) -> dict[str, Any]:
    """Fit the rejection of an exported line model on ``per_layout`` validation pages of every
    layout and store it in the model's metadata (the file replaced whole); return it."""
    from digitrec.files import atomic_path
    from digitrec.training.export import write_metadata

    path = Path(model)
    predictor = PagePredictor(LineReader.load(path))  # the model reads every line, crops too
    samples = [page for _, page in validation_pages(per_layout, data_dir)]
    rejection, figures = fit_rejection(predictor, read_pages(predictor, samples))
    if predictor.reader.has_filter:
        region, figures["region_digits"] = fit_region_threshold(predictor, data_dir)
        rejection = replace(rejection, region_threshold=min(region, rejection.writing_threshold))
    metadata = {**predictor.reader.metadata, **rejection_metadata(rejection, figures)}
    with atomic_path(path, suffix=".onnx") as tmp:
        tmp.write_bytes(path.read_bytes())
        write_metadata(tmp, metadata)
        LineReader.load(tmp)  # it must still open
    return metadata
