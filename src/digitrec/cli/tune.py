"""``digitrec tune``: search a model's hyperparameters with Optuna, resumable and in parallel."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from digitrec.cli.options import add_data_options, add_setting_options, settings_given

FIXED_SETTINGS = ("epochs", "val_size")  # training settings a search can fix instead of search


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tune",
        help="search hyperparameters (Optuna; resumable, parallel)",
        description=(
            "Search a model's training settings, scored by validation accuracy. The study is "
            "stored (default: runs/tune/STUDY/study.db), so running the same command again "
            "continues it; with --storage postgresql://... processes on several machines share "
            "one study."
        ),
    )
    parser.add_argument("--model", default="lenet5", help="registered model name")
    parser.add_argument(
        "--trials", type=int, default=20, help="finished trials the study should hold (default 20)"
    )
    parser.add_argument("--timeout", type=float, metavar="S", help="stop starting trials after S s")
    parser.add_argument("--storage", metavar="URL", help="RDB URL (default: SQLite in the folder)")
    parser.add_argument(
        "--study", metavar="NAME", help="study name, a plain name (default: MODEL-DATASET)"
    )
    parser.add_argument("--workers", type=int, default=1, help="processes on this machine")
    parser.add_argument("--space", type=Path, metavar="FILE", help="JSON/YAML search-space changes")
    parser.add_argument("--subset", type=int, metavar="N", help="train on N images (quick search)")
    parser.add_argument("--seed", type=int, default=0, help="sampler and training seed")
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="study folder for the outputs: new, empty or an earlier search's",
    )
    parser.add_argument(
        "--retrain",
        action="store_true",
        help="train the best settings on the full training set and evaluate the test set once",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_setting_options(
        parser,
        FIXED_SETTINGS,
        "Fixed for every trial instead of searched (default: the model's recipe).",
    )
    add_data_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from digitrec.tune import TuneSettings, retrain, tune

    fixed = {**settings_given(args, FIXED_SETTINGS), "seed": args.seed}
    settings = TuneSettings(
        model=args.model,
        trials=args.trials,
        dataset=args.dataset,
        data_dir=args.data_dir,
        timeout=args.timeout,
        storage=args.storage,
        study=args.study,
        workers=args.workers,
        space_file=args.space,
        subset=args.subset,
        fixed={k: v for k, v in fixed.items() if v is not None},
        seed=args.seed,
        out=args.out,
        progress=not args.quiet,
    )
    result = tune(settings)
    print(result.leaderboard)
    print(f"best parameters {result.best_params_file}")
    print(f"  train with    digitrec train --model {args.model} --params {result.best_params_file}")
    print(f"figures         {result.folder}")
    if args.retrain:
        run_dir = retrain(result, args.data_dir, verbose=not args.quiet)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        print(f"retrained: test accuracy {metrics['test_accuracy']:.2%}  run directory {run_dir}")
    return 0
