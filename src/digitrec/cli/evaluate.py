"""``digitrec evaluate``: test metrics and a report for a run, a model file or the default model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from digitrec.cli.options import add_data_options


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a model on the test set or your own images",
        description=(
            "Print a model's metrics on its dataset's test set, or with --images on your own "
            "images (a subfolder per digit, read as predict --single reads a file). The report (report.md and its "
            "figures) goes to --out, else into the run directory when SOURCE is one; a model "
            "file or 'default' gets no report without --out. Progress goes to stderr."
        ),
    )
    parser.add_argument(
        "source",
        nargs="?",
        help="run directory, .keras or .onnx file, or 'default' (the packaged model)",
    )
    parser.add_argument("--model", dest="model", help="same as SOURCE")
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write the report here (default: the run directory; none for a model file)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the metrics as one JSON object (accuracy, test_loss, per_class, ...)",
    )
    parser.add_argument(
        "--perturb", action="store_true", help="also test on digits rotated ±15° and shifted ±3 px"
    )
    parser.add_argument(
        "--tta",
        action="store_true",
        help="average predictions over small shifts (a run directory or .keras file)",
    )
    parser.add_argument(
        "--images",
        action="append",
        type=Path,
        metavar="DIR",
        help="evaluate on this folder of your images, a subfolder per digit (repeatable)",
    )
    add_data_options(parser, dataset_default=None)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from digitrec.cli import progress_printer
    from digitrec.errors import DigitrecError
    from digitrec.evaluate import evaluate

    source = args.source or args.model
    if not source:
        raise DigitrecError("name a run directory, model file or 'default' to evaluate")
    if args.images and args.dataset:
        raise DigitrecError("--images and --dataset name two sets to evaluate on: give one")
    result = evaluate(
        source,
        args.dataset,
        args.data_dir,
        args.out,
        perturb=args.perturb,
        tta=args.tta,
        progress=progress_printer(),
        images=args.images or (),
    )
    if args.json:
        print(json.dumps(result))
        return 0
    if args.images:
        print_per_class(result)
    else:
        print(f"test accuracy   {result['accuracy']:.2%}  ({result['test_errors']} errors)")
    print(f"test loss       {result['test_loss']:.4f}")
    print(
        f"macro precision {result['macro_precision']:.4f}  recall {result['macro_recall']:.4f}"
        f"  F1 {result['macro_f1']:.4f}"
    )
    for name, accuracy in result.get("perturbed_accuracy", {}).items():
        print(f"{name:<22} {accuracy:.2%}")
    print(f"report          {result.get('report', 'none written (--out DIR writes one)')}")
    return 0


def print_per_class(result: dict) -> None:
    """Your images' accuracy, each class's precision and recall, and the confusion matrix."""
    print(f"skipped         {len(result['skipped'])} unreadable files")
    print(f"accuracy        {result['accuracy']:.2%}  ({result['test_errors']} errors)")
    print("class  precision  recall  images   confused with (true row, predicted column)")
    rows = zip(result["per_class"].items(), result["confusion_matrix"], strict=True)
    for (name, m), counts in rows:
        print(
            f"{name:<6} {m['precision']:>9.2%} {m['recall']:>7.2%} {m['support']:>7}   "
            + " ".join(f"{n:>3}" for n in counts)
        )
