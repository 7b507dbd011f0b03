"""Export a trained Keras model to ONNX, LiteRT (TFLite) or a TensorFlow SavedModel, verified.

Every export goes through Keras's own ``model.export``. Before the file is renamed into place,
the exported model is run on MNIST test images and must match Keras (probabilities within
``PARITY_TOLERANCE``, identical argmax), otherwise it is deleted and a ``ModelError`` says what
differed. The export also fits the calibration (temperature and rejection threshold) on the
validation split and writes it, with the model's description, into the ONNX metadata and a
Markdown model card beside the output.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from digitrec import __version__
from digitrec.calibration import REJECTION_RATE, apply_temperature, calibrate, rejection_metrics
from digitrec.config import TrainConfig
from digitrec.data import Dataset, as_model_input, load_dataset, split_validation
from digitrec.errors import DigitrecError, ModelError
from digitrec.saved_models import load_keras, predict_keras
from digitrec.files import atomic_directory, atomic_path, read_json
from digitrec.synthesis import user_style_inputs

FORMATS = {"onnx": ".onnx", "litert": ".tflite", "saved_model": ""}
KERAS_FORMAT = {"onnx": "onnx", "litert": "litert", "saved_model": "tf_saved_model"}
PARITY_IMAGES = 1000
PARITY_TOLERANCE = 1e-5
INPUT_DESCRIPTION = {
    "shape": [None, 28, 28, 1],
    "dtype": "float32",
    "layout": "NHWC",
    "range": [0.0, 1.0],
    "polarity": "white ink on black background",
    "normalization": (
        "MNIST: ink cropped, scaled so the longer side is 20 px (aspect kept, anti-aliased), "
        "placed in 28x28 centred by centre of mass"
    ),
}


def export_model(
    source: str | Path,
    format: str = "onnx",
    out: str | Path | None = None,
    data_dir: str | Path | None = None,
    rejection_rate: float = REJECTION_RATE,
    dataset: str | None = None,
    tta: bool = False,
) -> Path:
    """Export a run directory's (or ``.keras`` file's) model; verify it; return the output path.

    ``dataset`` defaults to the run's own (MNIST for a bare ``.keras`` file); with ``tta`` the
    exported model averages its predictions over small shifts (``models.with_tta``).
    """
    if format not in FORMATS:
        raise ModelError(f"unknown export format {format!r}; known: {', '.join(FORMATS)}")
    if not 0 <= rejection_rate < 1:
        raise DigitrecError(f"the rejection rate must be in [0, 1), not {rejection_rate}")
    model, run_dir = load_keras(source, tta)
    run = read_json(run_dir / "run.json") if run_dir and (run_dir / "run.json").exists() else {}
    config = run.get("config", {})
    data = load_dataset(dataset or config.get("dataset", "mnist"), data_dir, progress=False)
    out = Path(out) if out else default_output(Path(source), run_dir, format)
    parity_input = as_model_input(data.test_images[:PARITY_IMAGES])
    model(parity_input[:1])  # Keras exports only a model that has been called
    expected = predict_keras(model, data.test_images[:PARITY_IMAGES])

    if format == "saved_model":
        with atomic_directory(out) as tmp:
            model.export(str(tmp), format=KERAS_FORMAT[format], verbose=False)
            check_parity(expected, run_exported(tmp, format, parity_input), out)
    else:
        with atomic_path(out, suffix=FORMATS[format]) as tmp:
            model.export(str(tmp), format=KERAS_FORMAT[format], verbose=False)
            test_probs = run_exported(tmp, format, as_model_input(data.test_images))
            difference = check_parity(expected, test_probs[:PARITY_IMAGES], out)
            if format == "onnx":
                metadata = describe(model, run_dir, run, data, test_probs, rejection_rate)
                metadata["parity"] = {"images": PARITY_IMAGES, "max_difference": difference}
                metadata["tta"] = tta
                write_metadata(tmp, metadata)
                check_parity(expected, run_exported(tmp, format, parity_input), out)
                write_model_card(out, metadata)
    return out


def default_output(source: Path, run_dir: Path | None, format: str) -> Path:
    """``RUN_DIR/model.onnx`` (or ``.tflite``, ``saved_model/``), else beside the ``.keras`` file."""
    if run_dir is not None:
        return run_dir / ("saved_model" if format == "saved_model" else "model" + FORMATS[format])
    if format == "saved_model":
        return source.with_name(source.stem + "_saved_model")
    return source.with_suffix(FORMATS[format])


# --- running and checking exported models ---------------------------------------------------


def run_exported(path: Path, format: str, images: np.ndarray) -> np.ndarray:
    """Probabilities of an exported model for float32 inputs (N, 28, 28, 1)."""
    return _RUNNERS[format](Path(path), images)


def _run_onnx(path: Path, images: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: images})[0]


def _run_litert(path: Path, images: np.ndarray) -> np.ndarray:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    interpreter = Interpreter(model_path=str(path))
    (source,), (target,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.resize_tensor_input(source["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(source["index"], images)
    interpreter.invoke()
    return interpreter.get_tensor(target["index"])


def _run_saved_model(path: Path, images: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))  # keep a reference: serve() needs its variables
    return np.asarray(loaded.serve(images))


_RUNNERS: dict[str, Callable[[Path, np.ndarray], np.ndarray]] = {
    "onnx": _run_onnx,
    "litert": _run_litert,
    "saved_model": _run_saved_model,
}


def check_parity(expected: np.ndarray, actual: np.ndarray, out: Path) -> float:
    """The largest probability difference from Keras; ``ModelError`` unless every image's
    probabilities agree within ``PARITY_TOLERANCE`` with the same predicted class."""
    if actual.shape != expected.shape:
        raise ModelError(
            f"export to {out} failed its check: output shape {actual.shape}, Keras gives "
            f"{expected.shape}"
        )
    difference = float(np.abs(actual - expected).max())
    disagreements = int((actual.argmax(axis=1) != expected.argmax(axis=1)).sum())
    if difference > PARITY_TOLERANCE or disagreements:
        raise ModelError(
            f"export to {out} failed its check on {len(expected)} MNIST test images: largest "
            f"probability difference {difference:.2e} (allowed {PARITY_TOLERANCE:.0e}), "
            f"{disagreements} predicted classes differ; the output was deleted"
        )
    return difference


# --- description: metadata and model card ----------------------------------------------------


def describe(
    model: Any,
    run_dir: Path | None,
    run: dict[str, Any],
    data: Dataset,
    test_probs: np.ndarray,
    rejection_rate: float,
) -> dict[str, Any]:
    """The exported model's description: what it expects, how it was made, how well it does.

    Calibration is fitted on the validation split only (the threshold on its digits rendered as
    users' images); the test figures are measured once on the exported model's own outputs.
    """
    config = run.get("config", {})
    val_size = config.get("val_size") or TrainConfig.val_size
    _, _, x_val, y_val = split_validation(data.train_images, data.train_labels, val_size)
    calibration = calibrate(
        predict_keras(model, x_val),
        y_val.astype(np.int64),
        rejection_rate,
        user_probs=np.asarray(model.predict(user_style_inputs(x_val)[..., None], verbose=0)),
    )
    split = (
        f"the last {val_size} training images (the threshold: each rendered once as a user's image)"
    )
    if config.get("val_size") == 0:
        split += ", which this model was trained on (val_size 0): expect it overconfident"
    labels = data.test_labels.astype(np.int64)
    test = rejection_metrics(
        apply_temperature(test_probs, calibration.temperature), labels, calibration.threshold
    )
    return {
        "model_name": model.name,
        "classes": list(data.class_names),
        "input": INPUT_DESCRIPTION,
        "output": "probabilities (N, classes) before temperature scaling",
        "training_run": str(run_dir) if run_dir else None,
        "training_config": config,
        "training_command": training_command(config) if config else None,
        "trained": run.get("created"),
        "dataset": data.info.name,
        "data_checksums": run.get("dataset", {}).get("checksums", data.checksums),
        "test_accuracy": test["accuracy"],
        "test_accepted_accuracy": test["accepted_accuracy"],
        "test_rejection_rate": test["rejection_rate"],
        "test_size": len(labels),
        "temperature": calibration.temperature,
        "threshold": calibration.threshold,
        "calibration": {**calibration.to_dict(), "split": split},
        "parameters": int(model.count_params()),
        "digitrec_version": __version__,
        "versions": run.get("versions", {}),
        "exported": datetime.now().isoformat(timespec="seconds"),
    }


def training_command(config: dict[str, Any]) -> str:
    """The ``digitrec train`` command for a run's settings: the model, and a flag for each
    setting that differs from that model's recipe (``model_args`` and ``member_args`` need
    ``--params``). Settings a run predates take their defaults, the only behaviour then."""
    from digitrec.train import resolve_config

    config = {**TrainConfig().to_dict(), **config}
    try:
        recipe = resolve_config(config["model"]).to_dict()
    except DigitrecError:  # a model no longer registered: spell out every setting
        recipe = {}
    words = ["digitrec", "train", "--model", str(config["model"])]
    for key, value in config.items():
        if (
            key in ("model", "model_args", "member_args")
            or value is None
            or value is False
            or recipe.get(key) == value
        ):
            continue
        flag = "--" + key.replace("_", "-")
        words += [flag] if value is True else [flag, str(value)]
    return " ".join(words)


def write_metadata(path: Path, metadata: dict[str, Any]) -> None:
    """Store the description in the ONNX file's ``metadata_props``, each value as JSON."""
    import onnx

    proto = onnx.load(str(path))
    onnx.helper.set_model_props(proto, {k: json.dumps(v) for k, v in metadata.items()})
    proto.doc_string = f"digitrec {metadata['model_name']}: handwritten digit classifier"
    proto.producer_name = "digitrec"
    proto.producer_version = __version__
    onnx.save(proto, str(path))


def _percent(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}%}"


def write_model_card(out: Path, metadata: dict[str, Any]) -> Path:
    """Write ``<name>.card.md`` beside an exported model, from its metadata."""
    calibration = metadata["calibration"]
    rows = [
        ("model", metadata["model_name"]),
        ("parameters", f"{metadata['parameters']:,}"),
        ("file", out.name),
        ("dataset", metadata["dataset"]),
        ("training run", metadata["training_run"]),
        ("trained", metadata["trained"]),
        ("exported", metadata["exported"]),
        ("digitrec version", metadata["digitrec_version"]),
        ("test accuracy", f"{metadata['test_accuracy']:.4%} ({metadata['test_size']} images)"),
        ("temperature", f"{metadata['temperature']:.4f}"),
        ("rejection threshold", f"{metadata['threshold']:.4f}"),
        ("test accuracy of accepted digits", f"{metadata['test_accepted_accuracy']:.4%}"),
        ("test rejection rate", f"{metadata['test_rejection_rate']:.2%}"),
        ("validation accuracy", f"{calibration['val_accuracy']:.4%}"),
        ("validation rejection rate", f"{calibration['val_rejection_rate']:.2%}"),
        ("validation accuracy, users' images", _percent(calibration["user_val_accuracy"], 4)),
        (
            "validation rejection rate, users' images",
            _percent(calibration["user_val_rejection_rate"], 2),
        ),
        (
            "largest difference from Keras",
            f"{metadata['parity']['max_difference']:.1e} on {metadata['parity']['images']} "
            "test images",
        ),
    ]
    lines = [
        f"# Model card: {metadata['model_name']}",
        "",
        "| | |",
        "| --- | --- |",
        *[f"| {name} | {value} |" for name, value in rows],
        "",
        "## Reproduce",
        "",
        "```bash",
        f"{metadata['training_command'] or 'digitrec train ...'} --out RUN_DIR",
        f"digitrec export RUN_DIR --format onnx{' --tta' if metadata['tta'] else ''} --out {out}",
        f"digitrec evaluate --model {out} --json   # reproduces the test accuracy",
        "```",
        "",
        f"Calibration: {calibration['rule']}. Fitted on {calibration['split']}; the test set "
        "was used for the figures above only.",
        "",
        "## Input",
        "",
        *[f"- {key}: {value}" for key, value in metadata["input"].items()],
        "",
        "## Data checksums (SHA256 of the uncompressed IDX files)",
        "",
        *[f"- `{name}`: `{digest}`" for name, digest in metadata["data_checksums"].items()],
        "",
        "## Training settings",
        "",
        "```json",
        json.dumps(metadata["training_config"], indent=2),
        "```",
        "",
    ]
    card = out.with_name(out.stem + ".card.md")
    with atomic_path(card) as tmp:
        tmp.write_text("\n".join(lines))
    return card
