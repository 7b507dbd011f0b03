"""Evaluation: test metrics with scikit-learn and a Markdown report with matplotlib figures, on
a dataset's test set or your own images; and written numbers read by the page reader, scored
against their true digits (``evaluate_strings``).

scikit-learn, matplotlib and TensorFlow are imported only once the arguments have been checked.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from digitrec.data import Dataset, DatasetInfo, load_dataset
from digitrec.errors import ImageError
from digitrec.files import atomic_path, read_json
from digitrec.read.image_folders import STRING_LABELS, string_labels
from digitrec.training.saved_models import Classifier, check_model_source, load_classifier

MISTAKES_SHOWN = 25
ROTATION_DEGREES = 15.0
SHIFT_PIXELS = 3
SIGNIFICANT_DIGITS = 6  # of the floats in evaluation JSON: more than 10,000 images resolve
REPORT_NAME = "report"  # report.md; a report on your images is named for them


def classification_metrics(
    labels: np.ndarray, probs: np.ndarray, class_names: tuple[str, ...]
) -> dict[str, Any]:
    """Accuracy, log loss, per-class precision/recall/F1, macro averages and the confusion matrix."""
    from sklearn import metrics as skm

    classes = list(range(len(class_names)))
    predicted = probs.argmax(axis=1)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        labels, predicted, labels=classes, zero_division=0
    )
    return {
        "test_accuracy": float(skm.accuracy_score(labels, predicted)),
        "test_loss": float(skm.log_loss(labels, np.clip(probs, 1e-7, 1.0), labels=classes)),
        "test_errors": int((predicted != labels).sum()),
        "test_size": len(labels),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": skm.confusion_matrix(labels, predicted, labels=classes).tolist(),
    }


def rounded(value: Any, digits: int = SIGNIFICANT_DIGITS) -> Any:
    """``value`` with every float in it (in dicts and lists too) rounded to ``digits``
    significant digits, for JSON: the measurement, not the noise of float arithmetic."""
    if isinstance(value, float | np.floating):
        return float(f"{value:.{digits}g}") if math.isfinite(value) else float(value)
    if isinstance(value, dict):
        return {key: rounded(item, digits) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(item, digits) for item in value]
    return value


def evaluate_probabilities(
    data: Dataset,
    probs: np.ndarray,
    out_dir: Path | None,
    history: dict[str, list[float]] | None = None,
    verbose: bool = True,
    perturbed: dict[str, float] | None = None,
    report_name: str = REPORT_NAME,
    evaluated: str | None = None,
) -> dict[str, Any]:
    """Metrics of test-set probabilities; with ``out_dir``, also the report and its figures
    (``report_name``.md, on what is ``evaluated``, in words: by default the dataset's test set).
    ``perturbed`` (accuracy on distorted test images, see ``perturbed_accuracy``) joins both."""
    result = classification_metrics(data.test_labels, probs, data.class_names)
    if perturbed is not None:
        result["perturbed_accuracy"] = perturbed
    if out_dir is not None:
        evaluated = evaluated or f"the {data.info.name} test set"
        report = write_report(Path(out_dir), result, history, data, probs, report_name, evaluated)
        result["report"] = str(report)
    return result


def perturbations() -> dict[str, Any]:
    """Distortions of uint8 test images (N, 28, 28) for the robustness check: rotations by
    ±ROTATION_DEGREES and shifts by ±SHIFT_PIXELS in each direction (background fills in)."""
    from scipy import ndimage

    def rotate(angle: float) -> Any:
        return lambda images: ndimage.rotate(images, angle, axes=(1, 2), reshape=False, order=1)

    def shift(dy: int, dx: int) -> Any:
        return lambda images: ndimage.shift(images, (0, dy, dx), order=0)

    d, p = ROTATION_DEGREES, SHIFT_PIXELS
    return {
        f"rotated +{d:g}°": rotate(d),
        f"rotated -{d:g}°": rotate(-d),
        f"shifted {p} px right": shift(0, p),
        f"shifted {p} px left": shift(0, -p),
        f"shifted {p} px down": shift(p, 0),
        f"shifted {p} px up": shift(-p, 0),
    }


def perturbed_accuracy(
    classify: Classifier,
    images: np.ndarray,
    labels: np.ndarray,
    progress: Callable[[str], None] | None = None,
) -> dict[str, float]:
    """Accuracy of ``classify`` (uint8 images -> probabilities) on each distorted test set;
    ``progress`` hears the name of each before it is classified."""
    from sklearn import metrics as skm

    accuracy = {}
    for name, distort in perturbations().items():
        if progress:
            progress(f"classifying the test images {name}")
        accuracy[name] = float(skm.accuracy_score(labels, classify(distort(images)).argmax(axis=1)))
    return accuracy


def evaluate(
    source: str | Path,
    dataset: str | None = None,
    data_dir: str | Path | None = None,
    out: Path | None = None,
    perturb: bool = False,
    tta: bool = False,
    progress: Callable[[str], None] | None = None,
    images: Sequence[str | Path] = (),
) -> dict[str, Any]:
    """Evaluate a model on its dataset's test set, or with ``images`` on your own class folders
    (read as ``digitrec predict --single`` reads each file; unreadable ones skipped and listed
    under ``skipped``); with ``perturb``, also on rotated and shifted images; with ``tta``,
    averaging over small shifts. ``progress`` hears each step. The model's path and the images
    or data are checked and read before the model is loaded.

    Returns the metrics under the keys of a run's ``metrics.json`` (``classification_metrics``).
    The report is written to ``out``, else to a run's directory (its ``tta/`` folder with
    ``tta``): ``report.md``, or for your images ``report-images-FOLDER.md``, which leaves the
    run's own report as it is. A model file or ``default`` gets one only with ``out``.
    ``report`` names it when there is one.
    """
    say = progress or (lambda message: None)
    run_dir = check_model_source(source)
    run = read_json(run_dir / "run.json") if run_dir and (run_dir / "run.json").exists() else {}
    skipped = None
    if images:
        say(f"reading your images in {', '.join(map(str, images))}")
        data, skipped = image_folders_dataset(images)
    else:
        dataset = dataset or run.get("config", {}).get("dataset", "mnist")
        say(f"loading the {dataset} data")
        data = load_dataset(dataset, data_dir)
    say(f"loading the model {source}")
    classify, run_dir = load_classifier(source, tta)
    history = None
    if run_dir and (run_dir / "metrics.json").exists() and not images:
        history = read_json(run_dir / "metrics.json").get("history")
    report_dir = out or (run_dir / "tta" if run_dir and tta else run_dir)
    perturbed = None
    if perturb:
        perturbed = perturbed_accuracy(classify, data.test_images, data.test_labels, say)
    what = "your {} images" if images else "the {} test images"
    say("classifying " + what.format(len(data.test_images)) + " (shifted 9 ways)" * tta)
    probs = classify(data.test_images)
    if report_dir:
        say(f"writing the report in {report_dir}")
    name, evaluated = (
        (images_report_name(images), data.info.name) if images else (REPORT_NAME, None)
    )
    result = evaluate_probabilities(
        data, probs, report_dir, history, perturbed=perturbed, report_name=name, evaluated=evaluated
    )
    if skipped is not None:
        result["skipped"] = skipped
    return result


def image_folders_dataset(folders: Sequence[str | Path]) -> tuple[Dataset, list[str]]:
    """Your class folders as a dataset to evaluate on (their images as its test split), and
    the files skipped, each with why."""
    from digitrec.read.image_folders import CLASS_NAMES, read_image_folders

    own = read_image_folders(list(folders))
    name = "your images in " + ", ".join(map(str, folders))
    info = DatasetInfo(name=name, class_names=CLASS_NAMES, files={}, mirrors=())
    empty = np.zeros((0, 28, 28), np.uint8)
    data = Dataset(info, empty, empty[:, 0, 0], own.uint8_images(), own.labels)
    return data, [str(skip) for skip in own.skipped]


def images_report_name(folders: Sequence[str | Path]) -> str:
    """The name of a report on your images, from their folders' names:
    ``report-images-digits`` for ``--images my/digits``."""
    names = [Path(folder).resolve().name or "root" for folder in folders]
    return "-".join([REPORT_NAME, "images", *(re.sub(r"[^\w.-]+", "_", n) for n in names)])


# --- written numbers ----------------------------------------------------------------------


def evaluate_strings(
    source: str | Path,
    folder: str | Path,
    lines: str | Path | None = "default",
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Read each image of written numbers in ``folder`` (listed with its digits in its
    ``labels.csv``, see ``string_labels``) with the page reader of the classifier ``source``
    and the line model ``lines`` (as ``Recognizer.load`` takes them; "none" reads with the
    digit finder), and score what was read against the true digits (``string_scores``).
    Spaces and line breaks are ignored on both sides; unreadable images are skipped and
    listed under ``skipped``."""
    from digitrec.read.recognizer import Recognizer

    say = progress or (lambda message: None)
    labelled = string_labels(Path(folder))
    say(f"loading the model {source}")
    recognizer = Recognizer.load(source, lines=lines)
    reader = "auto" if recognizer.pages is not None else "digits"
    say(f"reading the {len(labelled)} images listed in {Path(folder) / STRING_LABELS}")
    pairs, files, skipped = [], [], []
    for path, truth in labelled.items():
        try:
            read = recognizer.read(path, reader=reader).text
        except ImageError as error:
            skipped.append(f"{path}: {error}")
            continue
        pairs.append((truth, digits_of(read)))
        files.append(str(path))
    result = string_scores(pairs)
    result["mistakes"] = [
        {"file": file, "text": truth, "read": read}
        for file, (truth, read) in zip(files, pairs, strict=True)
        if truth != read
    ]
    return {**result, "skipped": skipped, "reader": recognizer.describe()}


def digits_of(text: str) -> str:
    """The digits of a reading's text: spaces, line breaks and unknown digits left out."""
    return "".join(character for character in text if character.isdigit())


def string_scores(pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """How well numbers were read, from (true digits, digits read) pairs: the share read
    exactly, and the per-digit accuracy, 1 - (edit distance / true length) summed over all
    strings (at least 0; None without a true digit)."""
    exact = sum(truth == read for truth, read in pairs)
    errors = sum(edit_distance(truth, read) for truth, read in pairs)
    length = sum(len(truth) for truth, _ in pairs)
    return {
        "strings": len(pairs),
        "exact": exact,
        "exact_accuracy": exact / len(pairs) if pairs else None,
        "digits": length,
        "digit_errors": errors,
        "digit_accuracy": max(0.0, 1 - errors / length) if length else None,
    }


def edit_distance(a: str, b: str) -> int:
    """The fewest insertions, deletions and substitutions that make ``a`` into ``b``."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


# --- report -----------------------------------------------------------------------------------


def write_report(
    out_dir: Path,
    result: dict[str, Any],
    history: dict[str, list[float]] | None,
    data: Dataset,
    probs: np.ndarray,
    report_name: str = REPORT_NAME,
    evaluated: str = "the test set",
) -> Path:
    """Write ``report_name``.md on what was ``evaluated`` (in words) with learning curves, the
    confusion matrix and the worst mistakes; the figures of a report of another name than
    ``report`` carry its name first."""
    import matplotlib

    matplotlib.use("Agg")
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = "" if report_name == REPORT_NAME else f"{report_name}-"
    figures = {}
    if history and "loss" in history:
        figures["Learning curves"] = _save_figure(
            out_dir / f"{prefix}learning_curves.png", _curves(history)
        )
    figures["Confusion matrix"] = _save_figure(
        out_dir / f"{prefix}confusion_matrix.png",
        _confusion(result, data.class_names, evaluated),
    )
    figures["Most confident mistakes"] = _save_figure(
        out_dir / f"{prefix}mistakes.png", _mistakes(data, probs)
    )
    lines = [
        f"# Evaluation report: {data.info.name}",
        "",
        f"Written {datetime.now():%Y-%m-%d %H:%M}, on {evaluated} ({result['test_size']} images).",
        "",
        "| metric | value |",
        "| --- | --- |",
        f"| accuracy | {result['test_accuracy']:.4%} |",
        f"| loss | {result['test_loss']:.4f} |",
        f"| errors | {result['test_errors']} of {result['test_size']} |",
        f"| macro precision | {result['macro_precision']:.4f} |",
        f"| macro recall | {result['macro_recall']:.4f} |",
        f"| macro F1 | {result['macro_f1']:.4f} |",
        "",
        "| class | precision | recall | F1 | support |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {name} | {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} | {m['support']} |"
        for name, m in result["per_class"].items()
    ]
    if "perturbed_accuracy" in result:
        lines += ["", "## Robustness", "", "| test images | accuracy |", "| --- | --- |"]
        lines += [f"| {name} | {acc:.2%} |" for name, acc in result["perturbed_accuracy"].items()]
    for title, path in figures.items():
        lines += ["", f"## {title}", "", f"![{title}]({path.name})"]
    report = out_dir / f"{report_name}.md"
    with atomic_path(report) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return report


def _save_figure(path: Path, figure: Any) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(figure)
    return path


def _curves(history: dict[str, list[float]]) -> Any:
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    epochs = np.arange(1, len(history["loss"]) + 1)
    for axis, key in zip(axes, ("loss", "accuracy"), strict=True):
        axis.plot(epochs, history[key], "o-", label="train")
        if f"val_{key}" in history:
            axis.plot(epochs, history[f"val_{key}"], "o-", label="validation")
        axis.set(xlabel="epoch", ylabel=key, title=key)
        axis.grid(alpha=0.3)
        axis.legend()
    return figure


def _confusion(result: dict[str, Any], class_names: tuple[str, ...], evaluated: str) -> Any:
    import matplotlib.pyplot as plt
    from sklearn import metrics as skm

    figure, axis = plt.subplots(figsize=(7, 6))
    display = skm.ConfusionMatrixDisplay(
        np.array(result["confusion_matrix"]), display_labels=list(class_names)
    )
    display.plot(ax=axis, cmap="Blues", colorbar=True, values_format="d")
    axis.set_title(f"Confusion matrix ({evaluated})")
    return figure


def _mistakes(data: Dataset, probs: np.ndarray) -> Any:
    import matplotlib.pyplot as plt

    predicted = probs.argmax(axis=1)
    wrong = np.flatnonzero(predicted != data.test_labels)
    worst = wrong[np.argsort(-probs[wrong, predicted[wrong]])][:MISTAKES_SHOWN]
    columns = 5
    rows = max(1, -(-len(worst) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(2 * columns, 2.2 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, index in zip(axes.flat, worst, strict=False):
        axis.imshow(data.test_images[index], cmap="gray_r")
        true, guess = data.test_labels[index], predicted[index]
        axis.set_title(
            f"true {data.class_names[true]}\npred {data.class_names[guess]} "
            f"({probs[index, guess]:.0%})",
            fontsize=8,
        )
    figure.suptitle("Most confident mistakes")
    return figure
