"""Export a trained Keras model to ONNX, LiteRT (TFLite) or a TensorFlow SavedModel, verified.

Every export goes through Keras's own ``model.export``. Before the file is renamed into place,
the exported model is run on MNIST test images and must match Keras (probabilities within
``PARITY_TOLERANCE``, identical argmax), otherwise it is deleted and a ``ModelError`` says what
differed. An ONNX export also gets the calibration (temperature and rejection threshold), fitted
on the validation split, with the model's description in its metadata and a Markdown model card
beside it; the other formats get the description of where they came from. What an export may
replace is decided in ``export_output``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from digitrec import __version__
from digitrec.data import Dataset, as_model_input, load_dataset, split_validation
from digitrec.errors import DigitrecError, ModelError
from digitrec.files import atomic_directory, atomic_path, read_json, remove_stale_temporaries
from digitrec.quiet import bar_shown, filtered_stderr
from digitrec.read.calibration import (
    REJECTION_RATE,
    apply_temperature,
    calibrate,
    rejection_metrics,
)
from digitrec.synth.user_digits import user_style_inputs
from digitrec.training.config import TrainConfig
from digitrec.training.export_output import (
    CARD_TITLE,
    FORMATS,
    card_path,
    check_output,
    mark,
    output_path,
    unknown_format,
    written_paths,
)
from digitrec.training.models import as_float32
from digitrec.training.saved_models import keras_model_file, load_keras, predict_keras

KERAS_FORMAT = {"onnx": "onnx", "litert": "litert", "saved_model": "tf_saved_model"}
FORMAT_NAMES = {"onnx": "ONNX", "litert": "LiteRT", "saved_model": "SavedModel"}
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
    force: bool = False,
    progress: Callable[[str], None] | None = None,
    own_val: tuple[np.ndarray, np.ndarray] | None = None,
) -> Path:
    """Export a run directory's (or ``.keras`` file's) model; verify it; return the output path.

    ``out`` defaults to beside the model (``default_output``); an existing folder there holds a
    single-file export as ``model.onnx`` (``.tflite``). Nothing is replaced but an empty file or
    folder, or with ``force`` a previous digitrec export. ``dataset`` defaults to the run's own
    (MNIST for a bare ``.keras`` file); with ``tta`` the exported model averages its predictions
    over small shifts (``models.with_tta``). ``progress`` hears each step. ``own_val``: held-out
    images of the user's own (uint8, labels) that the calibration is fitted on as well.
    """
    if format not in FORMATS:
        raise ModelError(unknown_format(format))
    if not 0 <= rejection_rate < 1:
        raise DigitrecError(f"the rejection rate must be in [0, 1), not {rejection_rate}")
    say = progress or (lambda message: None)
    _, run_dir = keras_model_file(source)  # the paths are checked before TensorFlow loads
    out = output_path(Path(source), run_dir, format, Path(out) if out else None)
    check_output(out, format, force)
    run = read_json(run_dir / "run.json") if run_dir and (run_dir / "run.json").exists() else {}
    dataset = dataset or run.get("config", {}).get("dataset", "mnist")
    say(f"loading the {dataset} data")
    data = load_dataset(dataset, data_dir)
    say(f"loading the model {source}")
    model = as_float32(load_keras(source, tta)[0])  # e.g. a checkpoint of a bfloat16 run
    parity_input = as_model_input(data.test_images[:PARITY_IMAGES])
    model(parity_input[:1])  # Keras exports only a model that has been called
    expected = predict_keras(model, data.test_images[:PARITY_IMAGES])
    for path in written_paths(out, format):
        remove_stale_temporaries(path)
    with _atomic_output(out, format, force) as tmp:
        say(f"exporting to {FORMAT_NAMES[format]} with Keras")
        model.export(str(tmp), format=KERAS_FORMAT[format], verbose=False)
        say(f"checking the export against Keras on {len(expected)} test images")
        difference = check_parity(expected, run_exported(tmp, format, parity_input), out)
        origin = {
            **identity(model, source, run_dir, format, tta),
            "parity": {"images": len(expected), "max_difference": difference},
        }
        if format == "onnx":
            say(f"classifying the {len(data.test_images)} test images with the ONNX model")
            test_probs = run_exported(tmp, format, as_model_input(data.test_images))
            say("calibrating on the validation split (its digits rendered as users' images)")
            bar = progress is not None and bar_shown()
            metadata = {
                **describe(model, run, data, test_probs, rejection_rate, bar, own_val),
                **origin,
            }
            write_metadata(tmp, metadata)
        else:
            mark(tmp, format, origin)
        if format != "saved_model":  # the file was rewritten: check it again
            check_parity(expected, run_exported(tmp, format, parity_input), out)
        check_output(out, format, force)  # again: something may have appeared meanwhile
    if format == "onnx":
        write_model_card(out, metadata)
    return out


def _atomic_output(out: Path, format: str, force: bool) -> AbstractContextManager[Path]:
    if format == "saved_model":
        return atomic_directory(out, replace=force)
    return atomic_path(out, suffix=FORMATS[format])


def identity(
    model: Any, source: str | Path, run_dir: Path | None, format: str, tta: bool
) -> dict[str, Any]:
    """Where an export came from: model, source, format, package version, time."""
    return {
        "model_name": model.name,
        "format": format,
        "source": str(source),
        "training_run": str(run_dir) if run_dir else None,
        "tta": tta,
        "digitrec_version": __version__,
        "exported": datetime.now().isoformat(timespec="seconds"),
    }


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
    with filtered_stderr():  # the interpreter announces its XNNPACK delegate
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
    run: dict[str, Any],
    data: Dataset,
    test_probs: np.ndarray,
    rejection_rate: float,
    bar: bool = False,
    own_val: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """The exported model's description: what it expects, how it was trained, how well it does
    (``identity`` adds where it came from); ``bar`` shows the rendering's progress bar.

    Calibration is fitted on the validation split only (the threshold on its digits rendered as
    users' images, with ``own_val``'s real users' images added to both); the test figures are
    measured once on the exported model's own outputs.
    """
    config = run.get("config", {})
    val_size = config.get("val_size") or TrainConfig.val_size
    _, _, x_val, y_val = split_validation(data.train_images, data.train_labels, val_size)
    probs = predict_keras(model, x_val)
    user_probs = np.asarray(
        model.predict(user_style_inputs(x_val, progress=bar)[..., None], verbose=0)
    )
    labels = y_val.astype(np.int64)
    if own_val is not None:
        own_probs = predict_keras(model, own_val[0])
        probs, user_probs = (
            np.concatenate([probs, own_probs]),
            np.concatenate([user_probs, own_probs]),
        )
        labels = np.concatenate([labels, own_val[1].astype(np.int64)])
    calibration = calibrate(probs, labels, rejection_rate, user_probs=user_probs)
    split = (
        f"the last {val_size} training images (the threshold: each rendered once as a user's image)"
    )
    if own_val is not None:
        split += f", plus {len(own_val[1])} held-out images of the user's own"
    if config.get("val_size") == 0:
        split += ", which this model was trained on (val_size 0): expect it overconfident"
    real_val = real_validation(model, run.get("real", []))
    labels = data.test_labels.astype(np.int64)
    test = rejection_metrics(
        apply_temperature(test_probs, calibration.temperature), labels, calibration.threshold
    )
    return {
        "classes": list(data.class_names),
        "input": INPUT_DESCRIPTION,
        "output": "probabilities (N, classes) before temperature scaling",
        "training_config": config,
        "training_command": training_command(config) if config else None,
        "trained": run.get("created"),
        "dataset": " + ".join([data.info.name, *[r["name"] for r in run.get("real", [])]]),
        "data_sources": data_sources(run, data, val_size),
        "data_checksums": run.get("dataset", {}).get("checksums", data.checksums),
        "real_val_accuracy": real_val,
        "test_accuracy": test["accuracy"],
        "test_accepted_accuracy": test["accepted_accuracy"],
        "test_rejection_rate": test["rejection_rate"],
        "test_size": len(labels),
        "temperature": calibration.temperature,
        "threshold": calibration.threshold,
        "calibration": {**calibration.to_dict(), "split": split},
        "parameters": int(model.count_params()),
        "versions": run.get("versions", {}),
    }


def data_sources(run: dict[str, Any], data: Dataset, val_size: int) -> list[dict[str, str]]:
    """Every dataset a model learned from or was chosen on: its source and terms, and its use."""
    held_out = f"the last {val_size} training images" if val_size else "none"
    sources = [
        {
            "name": data.info.name,
            "source": run.get("dataset", {}).get("source") or data.info.source or "unknown",
            "use": f"training; validation (epochs, calibration): {held_out}; test: the figures",
        }
    ]
    for real in run.get("real", []):
        use = (
            f"training: its train part ({real['train']} digits, each {real['repeat']}x an "
            f"epoch); validation (epochs): its valid part ({real['valid']} digits)"
        )
        sources.append({"name": real["name"], "source": real["source"], "use": use})
    return sources


def real_validation(model: Any, real: list[dict[str, Any]]) -> dict[str, float | None]:
    """The model's accuracy on the validation part of each real set it was trained with, read
    as users' crops are normalized (``digitrec.realdigits``); None where the set is not found."""
    from digitrec.realdigits import load_cvl

    accuracy: dict[str, float | None] = {}
    for name in (r["name"] for r in real):  # "cvl", the only real set so far
        try:
            part = load_cvl("valid")
        except DigitrecError:
            accuracy[name] = None
            continue
        predicted = predict_keras(model, part.images).argmax(axis=1)
        accuracy[name] = float((predicted == part.labels).mean())
    return accuracy


def training_command(config: dict[str, Any]) -> str:
    """The ``digitrec train`` command for a run's settings: the model, and a flag for each
    setting that differs from that model's recipe (``model_args`` and ``member_args`` need
    ``--params``). Settings a run predates take their defaults, the only behaviour then."""
    from digitrec.training.config import resolve_config

    config = {**TrainConfig().to_dict(), **config}
    init = {"init": config["init"]} if config["init"] else {}  # fine-tuned: no --model
    try:
        recipe = resolve_config(None if init else config["model"], **init).to_dict()
    except DigitrecError:  # a model no longer registered: spell out every setting
        recipe = {}
    start = ["--init", config["init"]] if init else ["--model", str(config["model"])]
    words = ["digitrec", "train", *start]
    for key, value in config.items():
        if (
            key in ("model", "init", "model_args", "member_args")
            or value is None
            or value is False
            or recipe.get(key) == value
        ):
            continue
        flag = "--" + key.replace("_", "-")
        values = value if isinstance(value, list) else [value]  # --images, repeatable
        words += [flag] if value is True else [word for v in values for word in (flag, str(v))]
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


def reproduce_notes(config: dict[str, Any]) -> list[str]:
    """What the training command needs beyond itself: the model it starts from, the real sets."""
    notes = []
    if config.get("init") == "default":
        notes.append(
            "`--init default` started from the default model of the digitrec that trained this "
            "one (for the packaged model: the one before it, whose card with its own commands is "
            "in the history of `src/digitrec/assets/default.card.md`)."
        )
    if config.get("real"):
        notes.append(
            f"`--real {' '.join(config['real'])}` reads the real handwriting sets from the folder "
            "that `DIGITREC_REAL_DIR` names (they are not downloadable)."
        )
    return [line for note in notes for line in (note, "")]


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
        *[
            (f"validation accuracy, {name} valid", _percent(accuracy, 4))
            for name, accuracy in metadata.get("real_val_accuracy", {}).items()
        ],
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
        f"{CARD_TITLE}{metadata['model_name']}",
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
        *reproduce_notes(metadata["training_config"]),
        f"Calibration: {calibration['rule']}. Fitted on {calibration['split']}; the test set "
        "was used for the figures above only.",
        "",
        "## Input",
        "",
        *[f"- {key}: {value}" for key, value in metadata["input"].items()],
        "",
        "## Data",
        "",
        *[
            f"- {d['name']}: {d['source']}. Used for {d['use']}."
            for d in metadata.get("data_sources", [])
        ],
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
    card = card_path(out)
    with atomic_path(card) as tmp:
        tmp.write_text("\n".join(lines))
    return card
