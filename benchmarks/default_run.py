"""The default run (`digitrec train`, LeNet-5, 10 epochs) against the classic tutorial loop.

Trains the default recipe through digitrec's run machinery (validation split, per-epoch atomic
checkpoints, report) for several seeds, and in the same run the classic tutorial script (the same
network in a bare `model.fit`, 60,000 images, no checkpoints) as the reference, the same network's
training steps alone (each epoch one TensorFlow call: the floor `digitrec train` works against),
and, where PyTorch is installed, the same network and recipe in PyTorch and the PyTorch speed
recipe (PyTorch is no dependency of digitrec; its rows are left out without it). Prints a table of median training time, its ratio to the classic script's wall time
(its whole process, as the speed goals are set) and to its training alone, time per epoch and
mean ± std test accuracy, with the load average; `--write-readme` puts it into its page under docs/benchmarks/.

    python benchmarks/default_run.py --seeds 0 1 2 [--write-readme]
"""

from __future__ import annotations

import argparse
import importlib.util
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
from digitrec.training.models import build_model
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


# LeNet-5's training steps and nothing else: the same network, Adam and batch 128 on the 55,000
# training images, each epoch one TensorFlow call that loops over its batches in the graph (no
# Python per step, no validation, checkpoints or report). The least time this network's training
# takes in TensorFlow on this machine; `digitrec train` can only come near it.
STEPS_ONLY = """
import json, sys, time
import keras
import tensorflow as tf
from digitrec.data import as_model_input, load_dataset
from digitrec.training.models import build_model
seed, epochs = int(sys.argv[1]), int(sys.argv[2])
keras.utils.set_random_seed(seed)
data = load_dataset("mnist", progress=False)
x = tf.constant(as_model_input(data.train_images[:55000]))
y = tf.constant(keras.utils.to_categorical(data.train_labels[:55000]))
model = build_model("lenet5")
model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
batch, steps = 128, 55000 // 128

def step(i, order):
    index = order[i * batch : (i + 1) * batch]
    logs = model.train_step((tf.gather(x, index), tf.gather(y, index)))
    with tf.control_dependencies(tf.nest.flatten(logs)):
        return i + 1, order

@tf.function(autograph=False)  # python -c: no source for AutoGraph, so the loop is explicit
def epoch(order):
    tf.while_loop(lambda i, _: i < steps, step, (tf.constant(0), order))

start = time.perf_counter()
for _ in range(epochs):
    epoch(tf.random.shuffle(tf.range(55000)))
seconds = time.perf_counter() - start
_, accuracy = model.evaluate(as_model_input(data.test_images),
                             keras.utils.to_categorical(data.test_labels), verbose=0)
print(json.dumps({"accuracy": accuracy, "seconds": seconds}))
"""

# PyTorch references: the speed recipe (two small convolutions, 24 and 32 filters, pooling before
# ReLU, Dense 256, batch 256, Adam with a one-cycle schedule peaking at 0.01, all 60,000 images)
# and LeNet-5 with the classic recipe (Adam 0.001, batch 128, the 55,000 training images);
# float32 on all cores.
TORCH = """
import json, sys, time
import numpy as np
import torch
from torch import nn
from digitrec.data import as_model_input, load_dataset
seed, epochs, recipe = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
torch.manual_seed(seed)
data = load_dataset("mnist", progress=False)
x = torch.from_numpy(as_model_input(data.train_images)).permute(0, 3, 1, 2).contiguous()
y = torch.from_numpy(data.train_labels.astype(np.int64))
if recipe == "lenet5":
    x, y, batch = x[:55000], y[:55000], 128
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25), nn.Conv2d(6, 16, 5),
        nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25), nn.Flatten(), nn.Linear(16 * 4 * 4, 120),
        nn.ReLU(), nn.Dropout(0.5), nn.Linear(120, 10))
    optimizer = torch.optim.Adam(model.parameters(), 0.001, eps=1e-7)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
else:
    model = nn.Sequential(
        nn.Conv2d(1, 24, 5), nn.MaxPool2d(2), nn.ReLU(), nn.Conv2d(24, 32, 3), nn.MaxPool2d(2),
        nn.ReLU(), nn.Flatten(), nn.Linear(32 * 5 * 5, 256), nn.ReLU(), nn.Linear(256, 10))
    batch = 256
    optimizer = torch.optim.Adam(model.parameters())
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, 0.01, total_steps=epochs * -(-len(x) // batch))
loss = nn.CrossEntropyLoss()
start = time.perf_counter()
for _ in range(epochs):
    model.train()
    for index in torch.randperm(len(x)).split(batch):
        optimizer.zero_grad()
        loss(model(x[index]), y[index]).backward()
        optimizer.step()
        schedule.step()
seconds = time.perf_counter() - start
test = torch.from_numpy(as_model_input(data.test_images)).permute(0, 3, 1, 2)
with torch.no_grad():
    predicted = model.eval()(test).argmax(1).numpy()
print(json.dumps({"accuracy": float((predicted == data.test_labels).mean()), "seconds": seconds}))
"""


def script_run(script: str, seed: int, epochs: int, *args: str) -> tuple[float, float, float]:
    """A reference script in a fresh process; (test accuracy, train seconds, wall seconds: the
    whole script from start to exit, imports, data loading and evaluation included)."""
    started = time.perf_counter()
    output = subprocess.run(
        [sys.executable, "-c", script, str(seed), str(epochs), *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    wall = time.perf_counter() - started
    result = json.loads(output.strip().splitlines()[-1])
    return result["accuracy"], result["seconds"], wall


def classic_run(seed: int, epochs: int = 10) -> tuple[float, float, float]:
    """The tutorial's bare training loop; (test accuracy, train seconds, the script's wall seconds)."""
    return script_run(CLASSIC, seed, epochs)


def steps_only_run(seed: int, epochs: int = 10) -> tuple[float, float]:
    """LeNet-5's training steps alone, one graph per epoch; (test accuracy, train seconds)."""
    return script_run(STEPS_ONLY, seed, epochs)[:2]


def torch_run(seed: int, recipe: str = "speed", epochs: int = 1) -> tuple[float, float] | None:
    """A PyTorch reference (``speed``: the speed recipe, ``lenet5``: LeNet-5's classic recipe);
    (test accuracy, train seconds), None without torch."""
    if importlib.util.find_spec("torch") is None:
        return None
    return script_run(TORCH, seed, epochs, recipe)[:2]


def load() -> str:
    """The 1-minute load average now (a shared machine makes times noisy)."""
    return f"{os.getloadavg()[0]:.1f}"


def row(
    name: str, results: list[tuple[float, float]], epochs: int, classic: tuple[float, float]
) -> list[str]:
    """A table row; ``classic`` is the classic script's median (wall, train) seconds."""
    accuracies = [a for a, _ in results]
    seconds = median([s for _, s in results])
    spread = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
    return [
        name,
        str(len(results)),
        str(epochs),
        f"{seconds:.1f}",
        f"{seconds / classic[0]:.2f}×",
        f"{seconds / classic[1]:.2f}×",
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
    ours, reference, steps_only, pytorch, torch_lenet5 = [], [], [], [], []
    load_before = load()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            started = time.perf_counter()
            ours.append(digitrec_run(seed, args.epochs, Path(tmp) / f"seed{seed}"))
            reference.append(classic_run(seed, args.epochs))
            steps_only.append(steps_only_run(seed, args.epochs))
            if seed == args.seeds[0]:  # once: it is only the outside reference
                pytorch += filter(None, [torch_run(seed)])
                torch_lenet5 += filter(None, [torch_run(seed, "lenet5", args.epochs)])
            print(f"seed {seed}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    classic = median([w for *_, w in reference]), median([s for _, s, _ in reference])
    header = ["run", "seeds", "epochs", "median train s", "time vs classic script"]
    header += ["time vs its training", "s / epoch", "test accuracy"]
    rows = [
        row("`digitrec train` (LeNet-5 defaults)", ours, args.epochs, classic),
        row("reference: classic tutorial loop", [r[:2] for r in reference], args.epochs, classic),
        row(
            "reference: LeNet-5's training steps alone (one graph per epoch)",
            steps_only,
            args.epochs,
            classic,
        ),
    ]
    if torch_lenet5:
        name = "reference: LeNet-5 in PyTorch (same network and recipe, a Python loop)"
        rows.append(row(name, torch_lenet5, args.epochs, classic))
    if pytorch:
        rows.append(row("reference: PyTorch speed recipe", pytorch, 1, classic))
    text = (
        f"{markdown_table(header, rows)}\n\nThe classic script's wall time (its whole process: "
        f"imports, data, training, evaluation): median {classic[0]:.1f} s, its training "
        f"{classic[1]:.1f} s. {machine()}; load average {load_before} at the start, {load()} "
        "at the end "
        "(a shared machine: times are noisy, ratios are from the same run); "
        "`python benchmarks/default_run.py`."
    )
    print(text)
    if args.write_readme:
        write_into_readme("default", text)


if __name__ == "__main__":
    main()
