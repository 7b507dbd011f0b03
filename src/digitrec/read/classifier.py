"""The single-digit classifier: an exported ONNX model that reads 28×28 MNIST-normalized digits,
calibrated with the temperature and the rejection threshold stored in its metadata.

An image's digits are found as pieces of ink and normalized as MNIST was built
(``digitrec.read.imaging``), classified in one batch, and calibrated; digits read with low
confidence and ink shaped like no digit (a scribble) are unknown ("?").
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from digitrec.errors import ModelError
from digitrec.read.boxes import box_around
from digitrec.read.calibration import apply_temperature
from digitrec.read.imaging import MAX_PIXELS, DigitCrop, image_digits
from digitrec.read.loader import load_model
from digitrec.read.results import UNKNOWN, Line, Reading, digit_from, line_text


class Classifier:
    """An ONNX digit classifier with its calibration; the session is created once and reused."""

    def __init__(self, session: Any, metadata: dict[str, Any], source: str):
        model_input = session.get_inputs()[0]
        if list(model_input.shape[1:]) != [28, 28, 1]:
            raise ModelError(
                f"{source}: the model takes inputs of shape {model_input.shape}, not (N, 28, 28, 1)"
            )
        self.session = session
        self.metadata = metadata
        self.source = source
        self.input_name = model_input.name
        self.temperature = float(metadata.get("temperature", 1.0))
        self.threshold = float(metadata.get("threshold", 0.0))

    @classmethod
    def load(cls, model: str | Path = "default", threads: int | None = None) -> Classifier:
        """Open an exported ONNX classifier (a file, or a run directory holding ``model.onnx``),
        or ``"default"`` for the one shipped in the package (see ``load_model``)."""
        loaded = load_model(model, threads)
        return cls(loaded.session, loaded.metadata, loaded.source)

    @property
    def classes(self) -> list[str]:
        count = self.session.get_outputs()[0].shape[-1]
        return self.metadata.get("classes") or [str(i) for i in range(count)]

    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities (N, classes) for inputs (N, 28, 28[, 1]) in [0, 1],
        white on black, in one call to ONNX Runtime."""
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim == 3:
            batch = batch[..., None]
        if batch.ndim != 4 or batch.shape[1:] != (28, 28, 1):
            raise ModelError(f"expected inputs of shape (N, 28, 28, 1), got {batch.shape}")
        if len(batch) == 0:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        probs = self.session.run(None, {self.input_name: batch})[0]
        return apply_temperature(probs, self.temperature)

    def read_images(
        self, images: Sequence[Any], single: bool, top_k: int, max_pixels: int = MAX_PIXELS
    ) -> list[Reading]:
        """Each image's digits (see ``Recognizer.read``), all of them classified in one batch."""
        return self.read_crops([image_digits(image, single, max_pixels) for image in images], top_k)

    def read_crops(self, crops: Sequence[list[DigitCrop]], top_k: int) -> list[Reading]:
        """The readings of each image's digit crops (one line, if any), in one batch."""
        inputs = [crop.image for image_crops in crops for crop in image_crops]
        probs = self.predict_proba(np.stack(inputs) if inputs else np.zeros((0, 28, 28)))
        readings, start = [], 0
        for image_crops in crops:
            image_probs = probs[start : start + len(image_crops)]
            start += len(image_crops)
            digits = [
                digit_from(p, self.threshold, crop.box, top_k, crop.plausible)
                for crop, p in zip(image_crops, image_probs, strict=True)
            ]
            text = line_text(
                [UNKNOWN if d.label is None else self.classes[d.label] for d in digits],
                [d.box for d in digits],
            )
            lines = [Line(text, box_around(d.box for d in digits), digits)] if digits else []
            readings.append(Reading(text, digits, [crop.image for crop in image_crops], lines))
        return readings
