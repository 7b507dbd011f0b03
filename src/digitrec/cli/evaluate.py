"""``digitrec evaluate``: test metrics and a report for a run, a model file or the default model;
or how well it reads written numbers (``--strings``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from digitrec.cli.options import add_data_options
from digitrec.errors import DigitrecError
from digitrec.quiet import progress_printer
from digitrec.read.image_folders import counted, skipped_lines

MISTAKES_PRINTED = 10  # strings read wrongly, listed by --strings (JSON lists all)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a model on the test set or your own images",
        description=(
            "Print a model's metrics on its dataset's test set, or with --images on your own "
            "images (a subfolder per digit, read as predict --single reads a file). The report "
            "(report.md and its figures; for your images report-images-FOLDER.md) goes to "
            "--out, else into the run directory when SOURCE is one; a model file or 'default' "
            "gets no report without --out. With --strings, read images of written numbers "
            "with the page reader and score them against their digits. Progress goes to stderr."
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
        help="print the metrics as one JSON object (the keys of a run's metrics.json: "
        "test_accuracy, test_loss, per_class, ...)",
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
    parser.add_argument(
        "--strings",
        type=Path,
        metavar="DIR",
        help="read the images of written numbers in DIR, listed with their digits in "
        "DIR/labels.csv (columns file,text), and print the share read exactly and the "
        "per-digit accuracy",
    )
    parser.add_argument(
        "--lines",
        metavar="MODEL",
        help="with --strings: the page reader's line model: 'default' (the run's own, else the "
        "shipped one), 'documents' (the shipped one for cheques and forms), an exported line "
        "model, or 'none' (read with the digit finder)",
    )
    add_data_options(parser, dataset_default=None)
    parser.set_defaults(run=run)


def check_combination(args: argparse.Namespace) -> None:
    """Refuse options that name two things to evaluate on, or that do not apply."""
    if args.images and args.dataset:
        raise DigitrecError("--images and --dataset name two sets to evaluate on: give one")
    if args.lines and not args.strings:
        raise DigitrecError(
            "--lines chooses the page reader's line model, which only --strings uses"
        )
    if args.strings:
        given = [
            option
            for option, value in (
                ("--images", args.images),
                ("--dataset", args.dataset),
                ("--perturb", args.perturb),
                ("--tta", args.tta),
                ("--out", args.out),
            )
            if value
        ]
        if given:
            raise DigitrecError(
                f"--strings reads written numbers with the page reader and writes no report: "
                f"leave out {', '.join(given)}"
            )


def run(args: argparse.Namespace) -> int:
    from digitrec.training.evaluate import evaluate, evaluate_strings, rounded

    source = args.source or args.model
    if not source:
        raise DigitrecError("name a run directory, model file or 'default' to evaluate")
    check_combination(args)
    if args.strings:
        result = evaluate_strings(
            source, args.strings, args.lines or "default", progress=progress_printer()
        )
    else:
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
        print(json.dumps(rounded(result)))
    elif args.strings:
        print_strings(result)
    else:
        print_metrics(result, bool(args.images))
    return 0


def print_metrics(result: dict[str, Any], own_images: bool) -> None:
    """The metrics for people: on your images, also each class and the confusion matrix."""
    errors = f"{result['test_errors']} errors of {result['test_size']}"
    if own_images:
        print(f"your images     {result['test_accuracy']:.2%}  ({errors})")
        print_skipped(result["skipped"])
        print_per_class(result)
        print(f"loss            {result['test_loss']:.4f}")
    else:
        print(f"test accuracy   {result['test_accuracy']:.2%}  ({errors})")
        print(f"test loss       {result['test_loss']:.4f}")
    print(
        f"macro precision {result['macro_precision']:.4f}  recall {result['macro_recall']:.4f}"
        f"  F1 {result['macro_f1']:.4f}"
    )
    for name, accuracy in result.get("perturbed_accuracy", {}).items():
        print(f"{name:<22} {accuracy:.2%}")
    print(f"report          {result.get('report', 'none written (--out DIR writes one)')}")


def print_skipped(skipped: list[str]) -> None:
    """How many unreadable files were skipped, and the first few by name."""
    print(f"skipped         {counted(len(skipped), 'unreadable file')}")
    for line in skipped_lines(skipped):
        print(f"  {line}")


def print_per_class(result: dict) -> None:
    """Each class's precision and recall, and the confusion matrix."""
    print("class  precision  recall  images   confused with (true row, predicted column)")
    rows = zip(result["per_class"].items(), result["confusion_matrix"], strict=True)
    for (name, m), counts in rows:
        print(
            f"{name:<6} {m['precision']:>9.2%} {m['recall']:>7.2%} {m['support']:>7}   "
            + " ".join(f"{n:>3}" for n in counts)
        )


def print_strings(result: dict[str, Any]) -> None:
    """How well written numbers were read, and the first strings read wrongly."""
    strings, digits = result["strings"], result["digits"]
    if strings:
        print(
            f"read exactly    {result['exact_accuracy']:.2%}  "
            f"({result['exact']} of {counted(strings, 'string')})"
        )
    if digits:
        print(
            f"digits          {result['digit_accuracy']:.2%}  "
            f"({counted(result['digit_errors'], 'edit')} in {counted(digits, 'digit')})"
        )
    print_skipped(result["skipped"])
    mistakes = result["mistakes"]
    if mistakes:
        print(f"read wrongly    {counted(len(mistakes), 'string')} (true -> read)")
        for mistake in mistakes[:MISTAKES_PRINTED]:
            print(f"  {mistake['file']}  {mistake['text']} -> {mistake['read'] or '(nothing)'}")
        if len(mistakes) > MISTAKES_PRINTED:
            print(f"  and {len(mistakes) - MISTAKES_PRINTED} more (--json lists all)")
    reader = result["reader"]
    lines = reader["page_reader"] or "none: the digit finder read them"
    print(f"read by         {reader['classifier']}; line model: {lines}")
