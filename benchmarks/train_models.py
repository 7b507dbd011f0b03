"""How accurate is each registered model, at what cost? Train each over several seeds, with the
classic LeNet-5 as the reference in the same run.

Every model trains with its default recipe (``digitrec train --model NAME --seed K``) into
``OUT/NAME/seed-K``; the table gives parameters, multiply-accumulates per image, epochs, median
``train_seconds`` (training only, data in memory), its ratio to LeNet-5's, and the test accuracy
as mean ± std and worst seed. ``--ensembles best`` adds a row for
``digitrec train --model best --ensemble N --seed FIRST`` (N = the number of seeds, trained into
``OUT/best/ensemble-N-seed-FIRST``; its time is the sum of the members'). In the same pass the
classic tutorial script (``default_run.py``) trains once per reference seed, and the PyTorch speed
recipe once where PyTorch is installed; every row gives its time as a ratio to the classic script's
wall time (its whole process, as the speed goals are set) and to its training time alone.
Runs already complete in
OUT are reused and runs cut short are resumed, so a long benchmark can be done in stages:

    nice .venv/bin/python benchmarks/train_models.py --models fast,mlp --seeds 0-4 --out runs/bench-models
    nice .venv/bin/python benchmarks/train_models.py --models fast,mlp,best:0-2 --seeds 0-4 \
        --out runs/bench-models --ensembles best --perturb --write-readme
"""

from __future__ import annotations

import argparse
import os
import statistics
from datetime import datetime
from pathlib import Path

from common import machine, markdown_table, median, write_into_readme
from default_run import classic_run, torch_run

from digitrec.data import Dataset, load_dataset
from digitrec.files import read_json
from digitrec.training.config import resolve_config
from digitrec.training.rundir import RUNS_DIR
from digitrec.training.train import resume, train

REFERENCE = "lenet5"


def seed_list(text: str) -> list[int]:
    """``0-4`` or ``0,2,5``."""
    if "-" in text:
        first, last = text.split("-")
        return list(range(int(first), int(last) + 1))
    return [int(s) for s in text.split(",")]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", default="mlp,fast,best", help="comma-separated names, each NAME or NAME:SEEDS"
    )
    parser.add_argument("--seeds", type=seed_list, default=seed_list("0-2"), help="e.g. 0-4")
    parser.add_argument(
        "--reference-seeds", type=seed_list, help="LeNet-5 seeds (default: --seeds)"
    )
    parser.add_argument("--out", type=Path, help="run folder (default: a new one under runs/)")
    parser.add_argument(
        "--perturb", action="store_true", help="add the worst accuracy on rotated/shifted digits"
    )
    parser.add_argument(
        "--ensembles",
        default="",
        help="comma-separated models also reported as one ensemble of all their seeds' runs",
    )
    parser.add_argument("--data-dir")
    parser.add_argument("--write-readme", action="store_true")
    return parser.parse_args()


def run_once(
    model: str, seed: int, out: Path, data_dir: str | None, ensemble: int = 1
) -> tuple[Path, bool]:
    """The finished run of one model and seed (an ensemble of ``ensemble`` members from that
    seed on, if > 1): reused if complete, else resumed or trained."""
    name = f"seed-{seed}" if ensemble == 1 else f"ensemble-{ensemble}-seed-{seed}"
    run_dir = out / model / name
    if (run_dir / "metrics.json").exists():
        return run_dir, True
    if (run_dir / "run.json").exists():
        return resume(run_dir, data_dir, verbose=False), False
    config = resolve_config(model, seed=seed, ensemble=ensemble)
    return train(config, run_dir, data_dir, verbose=False), False


def worst_perturbed(classify, data: Dataset) -> float:
    """The lowest accuracy over the rotated and shifted test sets (see ``evaluate --perturb``)."""
    from digitrec.training.evaluate import perturbed_accuracy

    return min(perturbed_accuracy(classify, data.test_images, data.test_labels).values())


def summarize(name: str, run_dirs: list[Path], perturb: bool, data: Dataset) -> dict:
    """One row for a model's seed runs: its size and cost, median time, mean ± std (a single
    run: no spread) and worst test accuracy."""
    import keras

    from digitrec.training.models import multiply_accumulates
    from digitrec.training.saved_models import load_classifier

    metrics = [read_json(d / "metrics.json") for d in run_dirs]
    accuracies = [m["test_accuracy"] for m in metrics]
    network = keras.saving.load_model(run_dirs[0] / "model.keras")
    summary = {
        "model": name,
        "parameters": network.count_params(),
        "macs": multiply_accumulates(network),
        "epochs": metrics[0]["epochs"],
        "seconds": median([m["train_seconds"] for m in metrics]),
        "mean": statistics.mean(accuracies),
        "std": statistics.stdev(accuracies) if len(accuracies) > 1 else None,
        "worst": min(accuracies),
        "seeds": len(metrics),
    }
    if perturb:
        summary["perturbed"] = statistics.mean(
            worst_perturbed(load_classifier(d)[0], data) for d in run_dirs
        )
    return summary


def script_line(name: str, results: list[tuple[float, ...]]) -> str:
    """A reference script's median time (and wall time, where measured) and accuracies in words."""
    accuracies = ", ".join(f"{r[0]:.2%}" for r in results)
    wall = (
        f", the whole script {median([r[2] for r in results]):.1f} s" if len(results[0]) > 2 else ""
    )
    return (
        f"{name}: median training {median([r[1] for r in results]):.1f} s{wall} (test {accuracies})"
    )


def table(summaries: list[dict], perturb: bool, classic: tuple[float, float]) -> str:
    """The models' table; ``classic`` is the classic script's median (wall, train) seconds."""
    reference = next(s for s in summaries if s["model"] == REFERENCE)
    header = ["model", "parameters", "MACs / image", "epochs", "median train s"]
    header += [f"time vs {REFERENCE}", "time vs classic script", "time vs its training"]
    header += ["test accuracy (mean ± std)", "worst seed", "seeds"]
    header += ["worst rotated/shifted (mean)"] if perturb else []
    rows = []
    for s in summaries:
        row = [
            s["model"],
            f"{s['parameters']:,}",
            f"{s['macs'] / 1e6:.2f} M",
            s["epochs"],
            f"{s['seconds']:.1f}",
            f"{s['seconds'] / reference['seconds']:.2f}×",
            f"{s['seconds'] / classic[0]:.2f}×",
            f"{s['seconds'] / classic[1]:.2f}×",
            f"{s['mean']:.2%}" + ("" if s["std"] is None else f" ± {s['std']:.2%}"),
            f"{s['worst']:.2%}",
            s["seeds"],
        ]
        rows.append(row + ([f"{s['perturbed']:.2%}"] if perturb else []))
    return markdown_table(header, rows)


def main() -> None:
    args = parse_args()
    out = args.out or RUNS_DIR / f"bench-models-{datetime.now():%Y%m%d-%H%M%S}"
    models = {REFERENCE: args.reference_seeds or args.seeds}
    for item in args.models.split(","):
        name, _, seeds = item.partition(":")
        models[name] = seed_list(seeds) if seeds else args.seeds
    load_before = os.getloadavg()[0]
    test_data = load_dataset("mnist", args.data_dir, progress=False)
    summaries, reused = [], 0
    for model, seeds in models.items():
        run_dirs = []
        for seed in seeds:
            run_dir, was_reused = run_once(model, seed, out, args.data_dir)
            reused += was_reused
            run_dirs.append(run_dir)
            acc = read_json(run_dir / "metrics.json")["test_accuracy"]
            print(f"{model} seed {seed}: {acc:.2%}{' (reused)' if was_reused else ''}", flush=True)
        summaries.append(summarize(model, run_dirs, args.perturb, test_data))
        if model in args.ensembles.split(","):
            run_dir, was_reused = run_once(model, seeds[0], out, args.data_dir, len(seeds))
            reused += was_reused
            name = f"{model} ensemble of {len(seeds)}"
            summaries.append(summarize(name, [run_dir], args.perturb, test_data))
    classic = [classic_run(seed) for seed in models[REFERENCE]]
    pytorch = [r for r in [torch_run(models[REFERENCE][0])] if r]  # once: the outside reference
    scripts = [script_line("classic tutorial script (LeNet-5, 10 epochs)", classic)]
    scripts += [script_line("PyTorch speed recipe (1 epoch)", pytorch)] if pytorch else []
    stages = f", {reused} of them trained in an earlier stage of this benchmark" if reused else ""
    text = (
        f"{machine()}; load average {load_before:.1f} at the start of this run, "
        f"{os.getloadavg()[0]:.1f} at the end (a shared machine: times are noisy). "
        f"Runs in `{out}`{stages}. In this run: {'; '.join(scripts)}.\n\n"
        + table(
            summaries,
            args.perturb,
            (median([r[2] for r in classic]), median([r[1] for r in classic])),
        )
    )
    print(text)
    if args.write_readme:
        write_into_readme("models", text)


if __name__ == "__main__":
    main()
