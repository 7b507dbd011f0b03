"""Choosing the page reader's calibration and rejection on validation pages, and measuring it.

Validation pages are generated (``pages.page_sample``, style "validation") from the validation
split only (the last 5,000 training images), every layout alike; the test split is never used
here. On them, after the line finder and the line model have read every page once:

1. the temperature is fitted (``calibration.fit_temperature``) on the digits of found lines
   read with as many digits as the line they lie on holds, against that line's true digits;
2. the line threshold is the mean-confidence cut that reads the most pages exactly (lines
   below it are taken for no writing: a printed word, a stamp, a scribble);
3. the digit threshold rejects the ``REJECTION_RATE`` least confident digits of the kept
   lines, as the single-digit classifier's does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from digitrec.calibration import REJECTION_RATE, fit_temperature
from digitrec.data import load_dataset, split_validation
from digitrec.reading.detect import find_lines
from digitrec.reading.lines import LineReading
from digitrec.reading.pages import LAYOUTS, PageSample, page_sample
from digitrec.reading.predictor import PagePredictor, Rejection
from digitrec.reading.sheet import LineTruth
from digitrec.recognizer import Recognizer

LINE_CUTS = np.round(np.arange(0.0, 0.96, 0.025), 3)


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
    exact = {float(cut): _exact(pages, confidences, cut) for cut in LINE_CUTS}
    line_threshold = max(exact, key=lambda cut: (exact[cut], -cut))
    kept = [
        c
        for page in confidences
        for line in page
        if line and np.mean(line) >= line_threshold
        for c in line
    ]
    digit_threshold = float(np.quantile(kept, REJECTION_RATE)) if kept else 0.0
    rejection = Rejection(temperature, digit_threshold, line_threshold)
    figures = {
        "validation_pages": len(pages),
        "temperature_digits": len(labels),
        "val_page_exact_by_line_threshold": exact,
    }
    return rejection, figures


def _truth_of(box: tuple[int, int, int, int], truths: list[LineTruth]) -> LineTruth | None:
    """The true line a found line's box lies on: the one whose box it overlaps most, if any."""
    best, best_area = None, 0
    for truth in truths:
        tx0, ty0, tx1, ty1 = truth.box
        area = max(0, min(box[2], tx1) - max(box[0], tx0)) * max(
            0, min(box[3], ty1) - max(box[1], ty0)
        )
        if area > best_area:
            best, best_area = truth, area
    return best


def _exact(pages: list[ReadPage], confidences: list[list[list[float]]], cut: float) -> float:
    """The fraction of pages read exactly when lines of mean confidence below ``cut`` are
    dropped (no digit rejected)."""
    right = 0
    for page, lines in zip(pages, confidences, strict=True):
        texts = [
            reading.text
            for reading, line in zip(page.readings, lines, strict=True)
            if line and np.mean(line) >= cut
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
    from digitrec.export import write_metadata
    from digitrec.files import atomic_path

    path = Path(model)
    predictor = PagePredictor.load(path)
    samples = [page for _, page in validation_pages(per_layout, data_dir)]
    rejection, figures = fit_rejection(predictor, read_pages(predictor, samples))
    metadata = {**predictor.reader.metadata, **rejection_metadata(rejection, figures)}
    with atomic_path(path, suffix=".onnx") as tmp:
        tmp.write_bytes(path.read_bytes())
        write_metadata(tmp, metadata)
        PagePredictor.load(tmp)  # it must still open
    return metadata
