"""Export a trained line recognizer to ONNX, verified, with the metadata ``LineReader`` needs.

The export goes through Keras's own ``model.export`` (as ``digitrec.export`` does for the digit
classifiers). Before the file is renamed into place, ONNX Runtime's frame posteriors must match
Keras's on validation lines within ``PARITY_TOLERANCE``, otherwise the file is deleted and a
``ModelError`` says by how much they differed; the exported reader's exact-line accuracy on the
run's validation lines is measured through ``LineReader`` and stored in the metadata.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np

from digitrec import __version__
from digitrec.data import load_dataset, split_validation
from digitrec.errors import ModelError
from digitrec.export import write_metadata
from digitrec.files import atomic_path, read_json
from digitrec.reading.line_model import LineSource, LineTrainSettings, batch_arrays, prepared
from digitrec.reading.line_training import default_source
from digitrec.reading.lines import ALPHABET, BLANK, HEIGHT, STRIDE, LineReader

PARITY_LINES = 64
PARITY_TOLERANCE = 1e-4
INPUT_DESCRIPTION = {
    "shape": [None, HEIGHT, None, 1],
    "dtype": "float32",
    "layout": "NHWC; the width a multiple of the stride, lines of a batch zero-padded on the right",
    "range": [0.0, 1.0],
    "polarity": "white ink on black background",
    "normalization": "digitrec.reading.lines.prepare_line",
}


def export_line_model(
    run_dir: str | Path,
    out: str | Path | None = None,
    data_dir: str | Path | None = None,
    source: LineSource | None = None,
) -> Path:
    """Export a line training run's model to ONNX (default ``RUN_DIR/model.onnx``), verified;
    return the output path. ``source`` must make the same lines as the run's (its default)."""
    run_dir = Path(run_dir)
    if not (run_dir / "model.keras").is_file() or not (run_dir / "run.json").is_file():
        raise ModelError(f"{run_dir}: not a complete line training run (no model.keras)")
    run = read_json(run_dir / "run.json")
    try:
        settings = LineTrainSettings(**run["settings"])
    except (KeyError, TypeError) as exc:
        raise ModelError(
            f"{run_dir}/run.json: not a line training run's settings ({exc})"
        ) from None
    model = keras.saving.load_model(run_dir / "model.keras")
    data = load_dataset(settings.dataset, data_dir, progress=False)
    _, _, x_val, y_val = split_validation(data.train_images, data.train_labels, settings.val_size)
    samples = list(
        (source or default_source())(x_val, y_val, settings.val_lines, settings.seed, style="train")
    )
    parity_inputs, _ = batch_arrays(list(prepared(samples[:PARITY_LINES])))
    expected = np.asarray(model(parity_inputs, training=False))
    out = Path(out) if out else run_dir / "model.onnx"
    metadata: dict[str, Any] = {
        "model_name": model.name,
        "alphabet": ALPHABET,
        "blank": BLANK,
        "height": HEIGHT,
        "stride": STRIDE,
        "input": INPUT_DESCRIPTION,
        "output": "frame posteriors (N, width / stride, classes): the digits, then the CTC blank",
    }
    with atomic_path(out, suffix=".onnx") as tmp:
        model.export(str(tmp), format="onnx", verbose=False)
        write_metadata(tmp, metadata)
        reader = LineReader.load(tmp)
        difference = check_parity(expected, reader.posteriors(parity_inputs), out)
        readings = reader.read_lines([sample.image for sample in samples])
        right = sum(r.text == s.text for r, s in zip(readings, samples, strict=True))
        metadata.update(
            val_exact=right / len(samples),
            val_lines=len(samples),
            parity={"lines": len(parity_inputs), "max_difference": difference},
            training_run=str(run_dir),
            training_settings=asdict(settings),
            trained=run.get("created"),
            parameters=int(model.count_params()),
            digitrec_version=__version__,
            versions=run.get("versions", {}),
            exported=datetime.now().isoformat(timespec="seconds"),
        )
        write_metadata(tmp, metadata)
        check_parity(expected, LineReader.load(tmp).posteriors(parity_inputs), out)
    return out


def check_parity(expected: np.ndarray, actual: np.ndarray, out: Path) -> float:
    """The largest posterior difference from Keras; ``ModelError`` above ``PARITY_TOLERANCE``."""
    if actual.shape != expected.shape:
        raise ModelError(
            f"export to {out} failed its check: output shape {actual.shape}, Keras gives "
            f"{expected.shape}; the output was deleted"
        )
    difference = float(np.abs(actual - expected).max())
    if difference > PARITY_TOLERANCE:
        raise ModelError(
            f"export to {out} failed its check on {len(expected)} validation lines: largest "
            f"posterior difference {difference:.2e} (allowed {PARITY_TOLERANCE:.0e}); the output "
            "was deleted"
        )
    return difference
