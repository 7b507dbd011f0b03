"""Opening exported ONNX models on ONNX Runtime (no TensorFlow): a file, a run directory's
``model.onnx`` or a model shipped in the package, with the digitrec metadata stored in it.
The classifier and the line reader both load through here."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from digitrec.errors import ModelError

DEFAULT_MODEL = "default.onnx"
RUN_MODEL = "model.onnx"  # where ``digitrec export RUN --format onnx`` puts a run's model
LINE_MODEL = "lines.onnx"  # the shipped line model's name, and a run directory's own
# The line models shipped in the package, by the name that loads them: the page reader's, and
# one fine-tuned on lines like real documents' (cheques' amounts, forms' cells), with CVL.
SHIPPED_LINE_MODELS = {"default": LINE_MODEL, "documents": "documents.onnx"}
# The one that reads crops of one number for the default (``PagePredictor.load``): trained on lines
# like real documents' and other writers', it reads them better than the page model, and
# multi-line pages worse. Your strings, crops of one number, are fine-tuned from it unless told.
CROP_LINE_MODEL = "documents"


@dataclass(frozen=True)
class OnnxModel:
    """An exported model open on ONNX Runtime: its session (created once, then reused), the
    digitrec metadata stored in it, and where it came from (for messages)."""

    session: Any
    metadata: dict[str, Any]
    source: str


def load_model(model: str | Path, threads: int | None = None, lines: bool = False) -> OnnxModel:
    """Open an exported ONNX model: ``"default"`` for the one shipped in the package (for a line
    model, ``"default"`` or another name of ``SHIPPED_LINE_MODELS``), else a
    file or a folder holding one: a classifier run's ``model.onnx`` (``_model_file``), or for a
    line model (``lines``) a folder's ``lines.onnx`` or a line run's ``model.onnx``
    (``line_model_file``). ``threads`` sets ONNX Runtime's intra-op thread count (default: its
    own choice). A file that cannot be read, a Keras model or a run not yet exported is a
    ``ModelError`` that says what to do."""
    if lines and str(model) in SHIPPED_LINE_MODELS:
        name = SHIPPED_LINE_MODELS[str(model)]
        source = f"{model} line model ({name})"
        content = _read(resources.files("digitrec") / "assets" / name, source)
    elif str(model) == "default":
        name = DEFAULT_MODEL
        source = f"default model ({name})"
        content = _read(resources.files("digitrec") / "assets" / name, source)
    else:
        path = line_model_file(Path(model)) if lines else _model_file(Path(model))
        source = str(path)
        content = _read(path, source)
    session = _session(content, source, threads)
    return OnnxModel(session, _metadata(session, source), source)


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
    # No memory arena: what a large page needed is given back after its read, not kept by the
    # worker (it costs nothing measurable on a single digit or a line).
    options.enable_cpu_mem_arena = False
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


def line_model_file(path: Path) -> Path:
    """The exported line model at ``path``: the file itself, or a folder's ``lines.onnx`` (a
    classifier run's own line model) or else its ``model.onnx`` (where a line run's export
    puts it). Nothing else is read: a FIFO would block, a device could be endless."""
    if path.is_dir():
        found = [path / name for name in (LINE_MODEL, RUN_MODEL) if (path / name).is_file()]
        if not found:
            raise ModelError(
                f"{path}: a folder with no line model in it (no {LINE_MODEL}, nor a line run's "
                f"exported {RUN_MODEL}); name an exported line model, 'default' or 'none'"
            )
        return found[0]
    if path.exists() and not path.is_file():
        raise ModelError(f"{path}: not a regular file (expected a line model's .onnx file)")
    return path
