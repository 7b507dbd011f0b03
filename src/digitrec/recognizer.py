"""Reading digits from images with an exported ONNX model on ONNX Runtime (no TensorFlow).

``Recognizer.load("default")`` opens the model shipped in the package; ``read(image)`` finds the
digits, normalizes each as MNIST was built, classifies them in one batch, applies the
calibration stored in the model's metadata, and reports as unknown the digits read with low
confidence and the ink shaped like no digit (a scribble).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from digitrec.calibration import apply_temperature
from digitrec.errors import ModelError
from digitrec.imaging import MAX_PIXELS, DigitCrop, image_digits

DEFAULT_MODEL = "default.onnx"
RUN_MODEL = "model.onnx"  # where ``digitrec export RUN --format onnx`` puts a run's model
UNKNOWN = "?"


def _plain(value: Any) -> Any:
    """A value as JSON-ready data: a dataclass as a dict of its fields but those marked
    ``"array"`` (NumPy arrays, which the web API encodes itself), tuples and lists as lists."""
    if is_dataclass(value) and not isinstance(value, type):
        return {
            item.name: _plain(getattr(value, item.name))
            for item in fields(value)
            if not item.metadata.get("array")
        }
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


class _Record:
    """A result dataclass: ``to_dict`` lists its fields, so that a new field reaches
    ``predict --json`` without another edit, and so does the web API, whose schema is built
    from the fields' types and the ``"description"`` in each field's metadata."""

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass
class Digit(_Record):
    """One digit found in an image."""

    label: int | None = field(
        metadata={"description": "the digit, or null when it was rejected as unsure"}
    )
    confidence: float = field(
        metadata={"description": "calibrated probability of the most likely label"}
    )
    box: tuple[int, int, int, int] = field(
        metadata={"description": "x0, y0, x1, y1 in the image's pixels"}
    )
    top: list[tuple[int, float]] = field(
        metadata={"description": "the likeliest labels with their probabilities, best first"}
    )


@dataclass
class Reading(_Record):
    """What an image says: its text and its digits, left to right."""

    text: str = field(
        metadata={"description": "the digits read left to right, '?' for a rejected one"}
    )
    digits: list[Digit] = field(metadata={"description": "each digit found, left to right"})
    normalized: list[np.ndarray] = field(
        default_factory=list,
        repr=False,
        metadata={"description": "the 28×28 image the model saw for each digit", "array": True},
    )


class Recognizer:
    """An ONNX classifier with its calibration; the session is created once and reused."""

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
    def load(cls, model: str | Path = "default", threads: int | None = None) -> Recognizer:
        """Open an exported ONNX model (a file, or a run directory holding ``model.onnx``), or
        ``"default"`` for the one shipped in the package. A Keras model or a run not yet
        exported is a ``ModelError`` that says how to export it.

        ``threads`` sets ONNX Runtime's intra-op thread count (default: its own choice).
        """
        if str(model) == "default":
            resource = resources.files("digitrec") / "assets" / DEFAULT_MODEL
            source, content = f"default model ({DEFAULT_MODEL})", _read(resource, "default model")
        else:
            path = _model_file(Path(model))
            source, content = str(path), _read(path, str(path))
        session = _session(content, source, threads)
        return cls(session, _metadata(session, source), source)

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

    def read(
        self, image: Any, single: bool = False, top_k: int = 3, max_pixels: int = MAX_PIXELS
    ) -> Reading:
        """Read the digits in one image (a path, bytes, PIL image or array), left to right;
        an image of more than ``max_pixels`` pixels is refused before it is decoded."""
        return self.read_many([image], single, top_k, max_pixels)[0]

    def read_many(
        self,
        images: Sequence[Any],
        single: bool = False,
        top_k: int = 3,
        max_pixels: int = MAX_PIXELS,
    ) -> list[Reading]:
        """Read several images, classifying all their digits in one batch.

        A bad image raises ``ImageError``; read images one at a time to carry on past it.
        """
        crops = [image_digits(image, single, max_pixels) for image in images]
        inputs = [crop.image for image_crops in crops for crop in image_crops]
        probs = self.predict_proba(np.stack(inputs) if inputs else np.zeros((0, 28, 28)))
        readings, start = [], 0
        for image_crops in crops:
            digits = [
                self._digit(crop, p, top_k)
                for crop, p in zip(
                    image_crops, probs[start : start + len(image_crops)], strict=True
                )
            ]
            start += len(image_crops)
            text = "".join(UNKNOWN if d.label is None else self.classes[d.label] for d in digits)
            readings.append(Reading(text, digits, [crop.image for crop in image_crops]))
        return readings

    def _digit(self, crop: DigitCrop, probs: np.ndarray, top_k: int) -> Digit:
        """The crop's digit; rejected (label None) below the threshold or when its ink is
        shaped like no digit (``crop.plausible``), whatever the model says."""
        order = np.argsort(-probs)[: max(top_k, 1)]
        best = int(order[0])
        confidence = float(probs[best])
        return Digit(
            label=best if confidence >= self.threshold and crop.plausible else None,
            confidence=confidence,
            box=tuple(int(v) for v in crop.box),
            top=[(int(i), float(probs[i])) for i in order[:top_k]],
        )


def _model_file(path: Path) -> Path:
    """The ONNX file of ``path``: itself, or a run directory's exported ``model.onnx``. Nothing
    else is read: a FIFO would block, a device could be endless."""
    if path.exists() and not path.is_file() and not path.is_dir():
        raise ModelError(f"{path}: not a regular file (expected a .onnx file or a run directory)")
    if not path.is_dir():
        return path
    if (path / RUN_MODEL).is_file():
        return path / RUN_MODEL
    if (path / "saved_model.pb").is_file():
        raise ModelError(
            f"{path}: a TensorFlow SavedModel, which digitrec cannot read; export the run it "
            "came from as ONNX: digitrec export RUN --format onnx"
        )
    if (path / "model.keras").is_file():
        raise ModelError(
            f"{path}: a training run with no exported model yet; export it first: "
            f"digitrec export {path} --format onnx"
        )
    raise ModelError(f"{path}: a directory with no {RUN_MODEL} (nor a training run) in it")


def _read(resource: Any, name: str) -> bytes:
    try:
        return resource.read_bytes()
    except OSError as exc:
        raise ModelError(f"{name}: cannot read model file ({exc.strerror or exc})") from None


def _metadata(session: Any, source: str) -> dict[str, Any]:
    """The digitrec description stored in the ONNX metadata (each value JSON-encoded)."""
    raw = session.get_modelmeta().custom_metadata_map
    try:
        return {key: json.loads(value) for key, value in raw.items()}
    except json.JSONDecodeError as exc:
        raise ModelError(f"{source}: unreadable digitrec metadata ({exc})") from None


def _session(content: bytes, source: str, threads: int | None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only; a bad file is reported as a ModelError below
    try:
        return ort.InferenceSession(content, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime raises several types for a bad file
        if hint := _export_hint(content, source):
            raise ModelError(hint) from None
        message = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"{source}: not a valid ONNX model (corrupt or truncated?): {message}"
        ) from None


def _export_hint(content: bytes, source: str) -> str | None:
    """For a Keras model file (.keras or HDF5), which ONNX Runtime cannot run but
    ``digitrec export`` turns into ONNX: what it is and how to export it."""
    export = f"not an ONNX model; export it as ONNX first: digitrec export {source} --format onnx"
    if content.startswith(b"\x89HDF\r\n\x1a\n"):
        return f"{source}: a Keras model (HDF5), {export}"
    if not content.startswith(b"PK\x03\x04"):
        return None
    try:
        names = zipfile.ZipFile(io.BytesIO(content)).namelist()
    except zipfile.BadZipFile:
        return None
    return f"{source}: a Keras model (.keras), {export}" if "config.json" in names else None
