"""The default run (`digitrec train`, LeNet-5, 10 epochs) against the classic tutorial loop.

Trains the default recipe through digitrec's run machinery (validation split, per-epoch atomic
checkpoints, report) for several seeds, and in the same run the classic tutorial script (the same
network in a bare `model.fit`, 60,000 images, no checkpoints) as the reference. Prints a table of
median training time, time per epoch and mean ± std test accuracy; `--write-readme` puts it into
README.md.

    python benchmarks/default_run.py --seeds 0 1 2 [--write-readme]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, markdown_table, median, write_into_readme


def digitrec_run(seed: int, epochs: int, out: Path) -> tuple[float, float]:
    """Train with `digitrec train` in a fresh process; (test accuracy, train seconds)."""
    subprocess.run(
        [sys.executable, "-m", "digitrec", "train", "--quiet", f"--seed={seed}",
         f"--epochs={epochs}", f"--out={out}"],
        check=True,
    )  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    return metrics["test_accuracy"], metrics["train_seconds"]


CLASSIC = """
import json, sys, time
import keras
from digitrec.data import as_model_input, load_dataset
from digitrec.models import build_model
seed, epochs = int(sys.argv[1]), int(sys.argv[2])
keras.utils.set_random_seed(seed)
data = load_dataset("mnist", progress=False)
x, y = as_model_input(data.train_images), keras.utils.to_categorical(data.train_labels)
model = build_model("lenet5")
model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
start = time.perf_counter()
model.fit(x, y, batch_size=128, epochs=epochs, validation_split=0.1, verbose=0)
seconds = time.perf_counter() - start
_, accuracy = model.evaluate(as_model_input(data.test_images),
                             keras.utils.to_categorical(data.test_labels), verbose=0)
print(json.dumps({"accuracy": accuracy, "seconds": seconds}))
"""


def classic_run(seed: int, epochs: int) -> tuple[float, float]:
    """The tutorial's bare training loop in a fresh process; (test accuracy, train seconds)."""
    output = subprocess.run(
        [sys.executable, "-c", CLASSIC, str(seed), str(epochs)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result = json.loads(output.strip().splitlines()[-1])
    return result["accuracy"], result["seconds"]


def row(name: str, results: list[tuple[float, float]], epochs: int) -> list[str]:
    accuracies = [a for a, _ in results]
    seconds = median([s for _, s in results])
    spread = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
    return [
        name,
        str(len(results)),
        str(epochs),
        f"{seconds:.1f}",
        f"{seconds / epochs:.2f}",
        f"{statistics.mean(accuracies):.2%} ± {spread:.2%}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()
    if not os.environ.get("DIGITREC_DATA_DIR"):
        print("note: DIGITREC_DATA_DIR is unset; MNIST comes from the cache or a download")
    ours, reference = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            started = time.perf_counter()
            ours.append(digitrec_run(seed, args.epochs, Path(tmp) / f"seed{seed}"))
            reference.append(classic_run(seed, args.epochs))
            print(f"seed {seed}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    header = ["run", "seeds", "epochs", "median train s", "s / epoch", "test accuracy"]
    table = markdown_table(
        header,
        [
            row("`digitrec train` (LeNet-5 defaults)", ours, args.epochs),
            row("reference: classic tutorial loop", reference, args.epochs),
        ],
    )
    text = f"{table}\n\n{machine()}; `python benchmarks/default_run.py`."
    print(text)
    if args.write_readme:
        write_into_readme("default", text)


if __name__ == "__main__":
    main()
