"""``digitrec export``: a trained model as ONNX, LiteRT or SavedModel, checked against Keras."""

from __future__ import annotations

import argparse
from pathlib import Path

from digitrec.cli.options import add_data_options
from digitrec.quiet import progress_printer
from digitrec.read.calibration import REJECTION_RATE
from digitrec.training.export_output import FORMATS, RENAMED_FORMATS, unknown_format


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a trained model (ONNX, LiteRT, SavedModel)",
        description=(
            "Export a run's model with Keras and check it on MNIST test images against Keras. "
            "ONNX also stores its calibration (fitted on the validation split) and description, "
            "with a model card beside it. Nothing existing is replaced but a previous digitrec "
            "export, and that only with --force. Progress goes to stderr."
        ),
    )
    parser.add_argument("source", metavar="RUN_DIR|MODEL", help="run directory or .keras file")
    parser.add_argument(
        "--format", type=format_name, choices=list(FORMATS), default="onnx", help="default: onnx"
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="PATH",
        help="output file (SavedModel: a new or empty folder); an existing folder holds "
        "model.onnx or model.tflite (default: beside the model)",
    )
    parser.add_argument(
        "--force", action="store_true", help="replace a previous digitrec export at --out"
    )
    parser.add_argument(
        "--rejection-rate",
        type=float,
        default=REJECTION_RATE,
        help="fraction of validation digits the confidence threshold rejects "
        f"(default {REJECTION_RATE})",
    )
    parser.add_argument(
        "--tta", action="store_true", help="export the model averaging over small shifts"
    )
    add_data_options(parser, dataset_default=None)
    parser.set_defaults(run=run)


def format_name(text: str) -> str:
    """The format named; a former name is an error saying the new one."""
    if text in RENAMED_FORMATS:
        raise argparse.ArgumentTypeError(unknown_format(text))
    return text


def run(args: argparse.Namespace) -> int:
    from digitrec.training.export import export_model

    out = export_model(
        args.source,
        args.format,
        args.out,
        args.data_dir,
        rejection_rate=args.rejection_rate,
        dataset=args.dataset,
        tta=args.tta,
        force=args.force,
        progress=progress_printer(),
    )
    print(f"exported {out}")
    return 0
