"""Evaluation: test metrics with scikit-learn, and a Markdown report with matplotlib figures."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sklearn import metrics as skm

from digitrec.data import Dataset, DatasetInfo, load_dataset
from digitrec.files import atomic_path, read_json
from digitrec.saved_models import Classifier, load_classifier

MISTAKES_SHOWN = 25
ROTATION_DEGREES = 15.0
SHIFT_PIXELS = 3


def classification_metrics(
    labels: np.ndarray, probs: np.ndarray, class_names: tuple[str, ...]
) -> dict[str, Any]:
    """Accuracy, log loss, per-class precision/recall/F1, macro averages and the confusion matrix."""
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


def evaluate_probabilities(
    data: Dataset,
    probs: np.ndarray,
    out_dir: Path | None,
    history: dict[str, list[float]] | None = None,
    verbose: bool = True,
    perturbed: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Metrics of test-set probabilities; with ``out_dir``, also the report and its figures.
    ``perturbed`` (accuracy on distorted test images, see ``perturbed_accuracy``) joins both."""
    result = classification_metrics(data.test_labels, probs, data.class_names)
    if perturbed is not None:
        result["perturbed_accuracy"] = perturbed
    if out_dir is not None:
        result["report"] = str(write_report(Path(out_dir), result, history, data, probs))
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
    (read as ``digitrec predict --single`` reads each file; unreadable ones skipped and counted
    under ``skipped``); with ``perturb``, also on rotated and shifted images; with ``tta``,
    averaging over small shifts. ``progress`` hears each step.

    Returns the metrics (``classification_metrics``, the accuracy under ``accuracy``). The report
    is written to ``out``, else to a run's directory (its ``tta/`` folder with ``tta``); a model
    file or ``default`` gets one only with ``out``. ``report`` names it when there is one.
    """
    say = progress or (lambda message: None)
    say(f"loading the model {source}")
    classify, run_dir = load_classifier(source, tta)
    run = read_json(run_dir / "run.json") if run_dir and (run_dir / "run.json").exists() else {}
    skipped = None
    if images:
        say(f"reading your images in {', '.join(map(str, images))}")
        data, skipped = image_folders_dataset(images)
    else:
        dataset = dataset or run.get("config", {}).get("dataset", "mnist")
        say(f"loading the {dataset} data")
        data = load_dataset(dataset, data_dir)
    history = None
    if run_dir and (run_dir / "metrics.json").exists():
        history = read_json(run_dir / "metrics.json").get("history")
    report_dir = out or (run_dir / "tta" if run_dir and tta else run_dir)
    perturbed = None
    if perturb:
        perturbed = perturbed_accuracy(classify, data.test_images, data.test_labels, say)
    what = "images" if images else "test images"
    say(f"classifying the {len(data.test_images)} {what}" + " (shifted 9 ways)" * tta)
    probs = classify(data.test_images)
    if report_dir:
        say(f"writing the report in {report_dir}")
    result = evaluate_probabilities(data, probs, report_dir, history, perturbed=perturbed)
    if skipped is not None:
        result["skipped"] = skipped
    return {"accuracy": result.pop("test_accuracy"), **result}


def image_folders_dataset(folders: Sequence[str | Path]) -> tuple[Dataset, list[str]]:
    """Your class folders as a dataset to evaluate on (their images as its test split), and
    the files skipped, each with why."""
    from digitrec.image_folders import CLASS_NAMES, read_image_folders

    own = read_image_folders(list(folders))
    name = "your images in " + ", ".join(map(str, folders))
    info = DatasetInfo(name=name, class_names=CLASS_NAMES, files={}, mirrors=())
    empty = np.zeros((0, 28, 28), np.uint8)
    data = Dataset(info, empty, empty[:, 0, 0], own.uint8_images(), own.labels)
    return data, [f"{skip.path}: {skip.reason}" for skip in own.skipped]


# --- report -----------------------------------------------------------------------------------


def write_report(
    out_dir: Path,
    result: dict[str, Any],
    history: dict[str, list[float]] | None,
    data: Dataset,
    probs: np.ndarray,
) -> Path:
    """Write ``report.md`` with learning curves, the confusion matrix and the worst mistakes."""
    import matplotlib

    matplotlib.use("Agg")
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = {}
    if history and "loss" in history:
        figures["Learning curves"] = _save_figure(out_dir / "learning_curves.png", _curves(history))
    figures["Confusion matrix"] = _save_figure(
        out_dir / "confusion_matrix.png", _confusion(result, data.class_names)
    )
    figures["Most confident mistakes"] = _save_figure(
        out_dir / "mistakes.png", _mistakes(data, probs)
    )
    lines = [
        f"# Evaluation report: {data.info.name}",
        "",
        f"Written {datetime.now():%Y-%m-%d %H:%M}.",
        "",
        "| metric | value |",
        "| --- | --- |",
        f"| test accuracy | {result['test_accuracy']:.4%} |",
        f"| test loss | {result['test_loss']:.4f} |",
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
    report = out_dir / "report.md"
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


def _confusion(result: dict[str, Any], class_names: tuple[str, ...]) -> Any:
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 6))
    display = skm.ConfusionMatrixDisplay(
        np.array(result["confusion_matrix"]), display_labels=list(class_names)
    )
    display.plot(ax=axis, cmap="Blues", colorbar=True, values_format="d")
    axis.set_title("Confusion matrix (test set)")
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
