"""``digitrec train``: train a registered model into a run directory, or resume one."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from digitrec.cli.options import add_data_options


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model (default: the classic LeNet-5)",
        description="Train a registered model with its default recipe; flags override it.",
    )
    parser.add_argument(
        "--model", help="registered model name (default: the --params file's, else lenet5)"
    )
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--schedule", choices=["constant", "cosine", "onecycle"])
    parser.add_argument("--warmup", type=float, help="one-cycle warm-up fraction of the steps")
    parser.add_argument("--label-smoothing", type=float)
    parser.add_argument(
        "--augment", type=float, metavar="STRENGTH", help="random rotation/shift/zoom; 0 = off"
    )
    parser.add_argument(
        "--elastic", type=float, metavar="STRENGTH", help="elastic distortion; 0 = off"
    )
    parser.add_argument(
        "--user-style",
        type=float,
        metavar="FRACTION",
        help="train on this fraction of the training images rendered as users' images; 0 = off",
    )
    parser.add_argument("--ema", type=float, metavar="MOMENTUM", help="weight averaging; 0 = off")
    parser.add_argument(
        "--ensemble", type=int, metavar="N", help="train N members (seeds SEED..) saved as one"
    )
    parser.add_argument(
        "--tta", action="store_true", default=None, help="average predictions over small shifts"
    )
    parser.add_argument("--val-size", type=int, help="training images held out for validation")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--params", type=Path, metavar="FILE", help="JSON file of settings")
    parser.add_argument("--out", type=Path, metavar="DIR", help="run directory to create")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue a stopped run")
    parser.add_argument("--tensorboard", action="store_true", help="write TensorBoard logs")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_data_options(parser, dataset_default=None)
    parser.set_defaults(run=run)


def settings_from(args: argparse.Namespace) -> dict:
    """The training settings given on the command line (a ``--params`` file first, flags over it)."""
    settings = json.loads(args.params.read_text()) if args.params else {}
    flags = {
        "dataset": args.dataset,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "schedule": args.schedule,
        "warmup": args.warmup,
        "label_smoothing": args.label_smoothing,
        "augment": args.augment,
        "elastic": args.elastic,
        "user_style": args.user_style,
        "ema": args.ema,
        "ensemble": args.ensemble,
        "tta": args.tta,
        "val_size": args.val_size,
        "seed": args.seed,
    }
    return {**settings, **{k: v for k, v in flags.items() if v is not None}}


def run(args: argparse.Namespace) -> int:
    from digitrec.train import default_run_dir, resolve_config, resume, train

    verbose = not args.quiet
    config = None
    if not args.resume:
        settings = settings_from(args)
        model = args.model or settings.pop("model", None) or "lenet5"
        config = resolve_config(model, **{k: v for k, v in settings.items() if k != "model"})
    run_dir = args.resume or args.out or default_run_dir(config)
    try:
        if args.resume:
            resume(run_dir, args.data_dir, verbose, args.tensorboard)
        else:
            train(config, run_dir, args.data_dir, verbose, args.tensorboard)
    except KeyboardInterrupt:
        print(f"\ninterrupted: continue with  digitrec train --resume {run_dir}", file=sys.stderr)
        return 130
    metrics = json.loads((run_dir / "metrics.json").read_text())
    print(
        f"test accuracy {metrics['test_accuracy']:.2%}  (loss {metrics['test_loss']:.4f}, "
        f"trained {metrics['train_seconds']:.1f} s)"
    )
    print(f"run directory {run_dir}")
    print(f"report        {metrics['report']}")
    return 0
