"""Does a hyperparameter search beat LeNet-5's default recipe? Search, retrain, compare.

Runs a TPE search with pruning on LeNet-5 (scored on the validation split, by default on a
training subset to keep it short), then trains the default recipe and the best settings found
on the full training split with the same seeds and evaluates each on the test set once.
The study lives in runs/bench/tune-lenet5, so an interrupted benchmark continues its search.

    nice .venv/bin/python benchmarks/tune_lenet5.py [--trials 20] [--seeds 3] [--write-readme]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import machine, markdown_table, median, write_into_readme

from digitrec.files import read_json
from digitrec.training.config import resolve_config
from digitrec.training.rundir import RUNS_DIR
from digitrec.training.train import train
from digitrec.tune import TuneSettings, builder_defaults, tune


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--subset", type=int, default=20000, help="training images per trial")
    parser.add_argument("--seeds", type=int, default=3, help="retraining seeds per recipe")
    parser.add_argument("--data-dir")
    parser.add_argument("--write-readme", action="store_true")
    return parser.parse_args()


def test_runs(
    name: str, params: dict, seeds: int, data_dir: str | None, workdir: Path
) -> list[dict]:
    """Train one recipe on the full training split once per seed; each run's metrics."""
    runs = []
    for seed in range(seeds):
        config = resolve_config("lenet5", **{**params, "seed": seed})
        run_dir = train(config, workdir / f"{name}-{seed}", data_dir, verbose=False)
        runs.append(read_json(run_dir / "metrics.json"))
    return runs


def row(name: str, params: dict, runs: list[dict]) -> list[str]:
    config = resolve_config("lenet5", **params)
    model_args = {**builder_defaults("lenet5"), **config.model_args}
    accuracies = [100 * r["test_accuracy"] for r in runs]
    val = [100 * r["history"]["val_accuracy"][-1] for r in runs]
    return [
        name,
        f"{config.epochs} ep, batch {config.batch_size}, lr {config.learning_rate:.2g} "
        f"{config.schedule}, smoothing {config.label_smoothing:.2f}, augment {config.augment:.2f}, "
        + ", ".join(f"{k} {v:.2f}" for k, v in model_args.items()),
        f"{median(val):.2f}",
        f"{median(accuracies):.2f} ({min(accuracies):.2f}–{max(accuracies):.2f})",
        f"{median([r['train_seconds'] for r in runs]):.0f}",
    ]


def main() -> None:
    args = parse_args()
    settings = TuneSettings(
        model="lenet5",
        trials=args.trials,
        data_dir=args.data_dir,
        workers=args.workers,
        subset=args.subset,
        study="bench-lenet5",
        out=RUNS_DIR / "bench" / "tune-lenet5",
    )
    started = time.perf_counter()
    result = tune(settings)
    search_minutes = (time.perf_counter() - started) / 60
    print(result.leaderboard)
    states = [t.state.name.lower() for t in result.study.trials]
    with tempfile.TemporaryDirectory() as workdir:
        default = test_runs("default", {}, args.seeds, args.data_dir, Path(workdir))
        tuned = test_runs("tuned", result.best_params, args.seeds, args.data_dir, Path(workdir))
    table = markdown_table(
        ["recipe", "settings", "val acc % (median)", "test acc % median (min–max)", "train s"],
        [row("default", {}, default), row("tuned", result.best_params, tuned)],
    )
    text = "\n".join(
        [
            f"LeNet-5, {machine()}.",
            f"Search: {len(states)} trials ({states.count('complete')} complete, "
            f"{states.count('pruned')} pruned) on {args.subset} training images, "
            f"{args.workers} workers, {search_minutes:.1f} min this run; best validation "
            f"accuracy {100 * result.study.best_value:.2f} %. Each recipe then trained on the "
            f"full 55,000 training images with seeds 0–{args.seeds - 1} and tested once:",
            "",
            table,
        ]
    )
    print(text)
    if args.write_readme:
        write_into_readme("tune", text)


if __name__ == "__main__":
    main()
