"""Where an export is written, and what it may replace: nothing the user made.

Every export carries a mark of digitrec: the ONNX file's producer name, a ``digitrec`` metadata
entry in the LiteRT file, a ``digitrec.json`` file in the SavedModel folder, a title line in the
model card. An existing output is replaced only when forced, and only if it bears that mark (or
is empty) and, a SavedModel folder, holds nothing but what an export writes; anything else stays
as it was and the export is refused before any work is done.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from digitrec.errors import ModelError
from digitrec.files import check_only_ours

FORMATS = {"onnx": ".onnx", "litert": ".tflite", "saved_model": ""}
RENAMED_FORMATS = {"tflite": "litert"}  # TensorFlow Lite is now called LiteRT
PRODUCER = "digitrec"
SAVED_MODEL_MARK = "digitrec.json"
SAVED_MODEL_FILES = ("saved_model.pb", "fingerprint.pb", SAVED_MODEL_MARK)
VARIABLES_FILE = re.compile(r"variables\.(index|data-\d+-of-\d+)")
CARD_TITLE = "# Model card: "


def unknown_format(format: str) -> str:
    """Why ``format`` is no export format: the new name of a renamed one, else the known ones."""
    if format in RENAMED_FORMATS:
        new = RENAMED_FORMATS[format]
        return f"TensorFlow Lite is now called LiteRT: the format is {new!r}, not {format!r}"
    return f"unknown export format {format!r}; known: {', '.join(FORMATS)}"


def output_path(source: Path, run_dir: Path | None, format: str, out: Path | None) -> Path:
    """``out``, or ``out/model.onnx`` (``.tflite``) when ``out`` is a folder and the format is one
    file; without ``out``, ``default_output``."""
    if out is None:
        return default_output(source, run_dir, format)
    out = Path(os.path.abspath(out))
    if format != "saved_model" and out.is_dir():
        return out / ("model" + FORMATS[format])
    return out


def default_output(source: Path, run_dir: Path | None, format: str) -> Path:
    """``RUN_DIR/model.onnx`` (or ``.tflite``, ``saved_model/``), else beside the ``.keras`` file."""
    if run_dir is not None:
        return run_dir / ("saved_model" if format == "saved_model" else "model" + FORMATS[format])
    if format == "saved_model":
        return source.with_name(source.stem + "_saved_model")
    return source.with_suffix(FORMATS[format])


def card_path(out: Path) -> Path:
    """The model card beside an exported model."""
    return out.with_name(out.stem + ".card.md")


def written_paths(out: Path, format: str) -> list[Path]:
    """What an export to ``out`` writes: the model, and for ONNX its model card."""
    return [out, card_path(out)] if format == "onnx" else [out]


def check_output(out: Path, format: str, force: bool) -> None:
    """Refuse an export that would replace anything but an empty file or folder, or — when
    forced — a previous digitrec export; and one that would replace the working folder."""
    here, real = Path.cwd().resolve(), Path(out).resolve()
    if real == here or real in here.parents:
        raise ModelError(f"{out} is the working folder or holds it; export to a new folder in it")
    for path in written_paths(out, format):
        if not os.path.lexists(path) or _is_empty(path):
            continue
        if not force:
            raise ModelError(
                f"{path} already exists; choose another --out, or replace a previous digitrec "
                "export with --force"
            )
        if not is_digitrec_output(path, format):
            raise ModelError(
                f"{path} exists and is not a digitrec {format} export; not replacing it, even "
                "with --force (choose another --out)"
            )
        if format == "saved_model":
            check_only_ours(
                path,
                _is_saved_model_part,
                "a digitrec saved_model export",
                "not replacing it, even with --force: move them out, or choose another --out",
            )


def _is_empty(path: Path) -> bool:
    if path.is_symlink():
        return False
    if path.is_dir():
        return not any(path.iterdir())
    return path.is_file() and path.stat().st_size == 0


def is_digitrec_output(path: Path, format: str) -> bool:
    """Whether ``path`` is a model (of ``format``) or model card that digitrec exported."""
    if path.is_symlink():
        return False
    reader = _is_card if path.name.endswith(".card.md") else _MARK_READERS[format]
    try:
        return reader(path)
    except Exception:  # unreadable, truncated, another format: not ours
        return False


def _is_card(path: Path) -> bool:
    with path.open(encoding="utf-8") as file:
        return file.readline().startswith(CARD_TITLE)


def _is_marked_onnx(path: Path) -> bool:
    import onnx

    return path.is_file() and onnx.load(str(path), load_external_data=False).producer_name == (
        PRODUCER
    )


def _is_marked_litert(path: Path) -> bool:
    from tensorflow.lite.python import schema_py_generated as schema

    data = path.read_bytes()
    if data[4:8] != b"TFL3":
        return False
    model = schema.Model.GetRootAsModel(data, 0)
    return any(model.Metadata(i).Name() == PRODUCER.encode() for i in range(model.MetadataLength()))


def _is_marked_saved_model(path: Path) -> bool:
    mark = path / SAVED_MODEL_MARK
    return (path / "saved_model.pb").is_file() and json.loads(mark.read_text())["producer"] == (
        PRODUCER
    )


def _is_saved_model_part(entry: Path) -> bool:
    """Whether ``entry`` of a SavedModel folder is one that Keras's export or digitrec writes: the
    graph, its fingerprint and our mark, ``variables/`` of checkpoint files, an empty ``assets/``
    (our models have none)."""
    if entry.is_symlink():
        return False
    if entry.name in SAVED_MODEL_FILES:
        return entry.is_file()
    if entry.name == "variables" and entry.is_dir():
        return all(
            VARIABLES_FILE.fullmatch(part.name) and part.is_file() and not part.is_symlink()
            for part in entry.iterdir()
        )
    return entry.name == "assets" and _is_empty(entry)


_MARK_READERS: dict[str, Callable[[Path], bool]] = {
    "onnx": _is_marked_onnx,
    "litert": _is_marked_litert,
    "saved_model": _is_marked_saved_model,
}


def mark(path: Path, format: str, description: dict[str, Any]) -> None:
    """Mark a LiteRT file or SavedModel folder as digitrec's, with its description (an ONNX file
    is marked by its metadata, ``export.write_metadata``)."""
    _MARK_WRITERS[format](path, {"producer": PRODUCER, **description})


def _mark_saved_model(path: Path, description: dict[str, Any]) -> None:
    (path / SAVED_MODEL_MARK).write_text(json.dumps(description, indent=2) + "\n")


def _mark_litert(path: Path, description: dict[str, Any]) -> None:
    """Add a ``digitrec`` metadata entry (a buffer holding the description) to a LiteRT file."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    buffer = schema.BufferT()
    buffer.data = list(json.dumps(description).encode())
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = PRODUCER, len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    flatbuffer_utils.write_model(model, str(path))


_MARK_WRITERS: dict[str, Callable[[Path, dict[str, Any]], None]] = {
    "litert": _mark_litert,
    "saved_model": _mark_saved_model,
}
