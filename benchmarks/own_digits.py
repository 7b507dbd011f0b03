"""Fine-tuning on your own handwriting, measured on digits the shipped model never saw.

scikit-learn's bundled digits (1,797 digits by 43 writers, 8×8, 16 grey levels) are rendered as
users' images (a margin added, upscaled smoothly to 96×96, dark ink on light paper) into a folder per class.
30 per class (seeded) are "yours": the default model is fine-tuned on them with
``digitrec train --init default --images`` (the ``finetune`` recipe; a stratified share held out
for validation and calibration). The rest are read as ``digitrec predict --single`` reads a file
(``image_folders``, then the recognizer), before (shipped model) and after (the run's ONNX);
MNIST's test set is read once, after.

``--choose`` instead compares fine-tuning recipes on the validation split only (the held-out
share of the 30 per class, and MNIST's validation split): it never reads the rest or MNIST test.

    python benchmarks/own_digits.py [--write-readme]
    python benchmarks/own_digits.py --choose [--only RECIPE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, markdown_table, write_into_readme

from digitrec.read.image_folders import read_image_folders
from digitrec.read.recognizer import Recognizer
from digitrec.training.config import resolve_config

PER_CLASS = 30
SIZE = 96  # rendered side, pixels
MARGIN = 2  # paper around the 8×8 digit, in its pixels (the digits fill their frames)
# Recipes compared by --choose (each on top of the finetune recipe: 15 epochs, augment 1).
CANDIDATES = {
    "all layers, lr 3e-4, mix 0.5": {"learning_rate": 3e-4},
    "all layers, lr 1e-3, mix 0.5": {"learning_rate": 1e-3},
    "all layers, lr 1e-4, mix 0.5": {"learning_rate": 1e-4},
    "all layers, lr 3e-4, mix 0.25": {"learning_rate": 3e-4, "mix_mnist": 0.25},
    "all layers, lr 3e-4, mix 0.75": {"learning_rate": 3e-4, "mix_mnist": 0.75},
    "all layers, lr 3e-4, mix 0.5, no augmentation": {"learning_rate": 3e-4, "augment": 0.0},
    "all layers, lr 3e-4, mix 0.5, 5 epochs": {"learning_rate": 3e-4, "epochs": 5},
    "all layers, lr 3e-4, mix 0.5, 30 epochs": {"learning_rate": 3e-4, "epochs": 30},
    "head only, lr 1e-3, mix 0.5": {"learning_rate": 1e-3, "train_layers": "head"},
    "all layers, lr 1e-3, mix 0.75": {"learning_rate": 1e-3, "mix_mnist": 0.75},
    "all layers, lr 1e-3, mix 0.9": {"learning_rate": 1e-3, "mix_mnist": 0.9},
    "all layers, lr 1e-3, mix 0.5, 5 epochs": {"learning_rate": 1e-3, "epochs": 5},
    "all layers, lr 1e-3, mix 0.75, 5 epochs": {
        "learning_rate": 1e-3,
        "mix_mnist": 0.75,
        "epochs": 5,
    },
    "all layers, lr 1e-3, mix 0.5, no augmentation": {"learning_rate": 1e-3, "augment": 0.0},
    "all layers, lr 1e-3, mix 0.5, label smoothing 0.1": {
        "learning_rate": 1e-3,
        "label_smoothing": 0.1,
    },
    "all layers, lr 1e-3, mix 0.75, label smoothing 0.1": {
        "learning_rate": 1e-3,
        "mix_mnist": 0.75,
        "label_smoothing": 0.1,
    },
    "frozen norm, lr 1e-3, mix 0.5": {"learning_rate": 1e-3, "train_layers": "frozen-norm"},
    "frozen norm, lr 3e-4, mix 0.5": {"learning_rate": 3e-4, "train_layers": "frozen-norm"},
    "all layers, lr 1e-3, mix 0.5, keep 0.2 of the start": {
        "learning_rate": 1e-3,
        "keep_init": 0.2,
    },
    "all layers, lr 1e-3, mix 0.5, keep 0.3 of the start": {
        "learning_rate": 1e-3,
        "keep_init": 0.3,
    },
    "all layers, lr 1e-3, mix 0.5, keep 0.5 of the start": {
        "learning_rate": 1e-3,
        "keep_init": 0.5,
    },
    "frozen norm, lr 1e-3, mix 0.75": {
        "learning_rate": 1e-3,
        "train_layers": "frozen-norm",
        "mix_mnist": 0.75,
    },
}


def render(images: np.ndarray, labels: np.ndarray, indices: np.ndarray, root: Path) -> Path:
    """Write the chosen 8×8 digits as PNGs into ``root/<class>/``: a margin of paper added,
    bicubic upscaling, dark ink (0) on light paper (255)."""
    for i in indices:
        framed = np.pad(images[i], MARGIN)
        ink = Image.fromarray(np.uint8(np.rint(framed / 16 * 255)), mode="L")
        paper = 255 - np.asarray(ink.resize((SIZE, SIZE), Image.Resampling.BICUBIC))
        folder = root / str(labels[i])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(paper).save(folder / f"{i:04d}.png")
    return root


def split(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``PER_CLASS`` indices of each class (seeded) as the user's, and the rest."""
    rng = np.random.default_rng(seed)
    yours = np.concatenate(
        [rng.choice(np.flatnonzero(labels == c), PER_CLASS, replace=False) for c in range(10)]
    )
    return np.sort(yours), np.setdiff1d(np.arange(len(labels)), yours)


def read_accuracy(model: str | Path, folder: Path) -> float:
    """Exact accuracy of a model reading every image of a class folder tree, as predict does."""
    data = read_image_folders(folder)
    probs = Recognizer.load(str(model)).predict_proba(data.images[..., None])
    return float((probs.argmax(axis=1) == data.labels).mean())


def fine_tune(yours: Path, out: Path, data_dir: str | None, **settings) -> tuple[Path, float]:
    """Fine-tune the default model on ``yours``; the run directory and the wall time."""
    from digitrec.training.train import train

    config = resolve_config(init="default", images=[str(yours)], **settings)
    started = time.perf_counter()
    train(config, out, data_dir, verbose=False)
    return out, time.perf_counter() - started


def choose(yours: Path, work: Path, data_dir: str | None, names: list[str]) -> str:
    """The accuracy of the candidate recipes ``names`` on the validation splits, as a table."""
    rows = []
    for name in names:
        settings = CANDIDATES[name]
        run, seconds = fine_tune(yours, work / f"run{len(rows)}", data_dir, **settings)
        metrics = json.loads((run / "metrics.json").read_text())
        rows.append(
            (
                name,
                f"{metrics['own_val_accuracy']:.2%}",
                f"{metrics['mnist_val_accuracy']:.2%}",
                f"{seconds:.0f} s",
            )
        )
        print(rows[-1], flush=True)
    header = ("recipe", "your validation (60)", "MNIST validation (5000)", "wall time")
    return f"{machine()}\n\n{markdown_table(header, rows)}"


def measure(yours: Path, rest: Path, work: Path, data_dir: str | None) -> str:
    before = read_accuracy("default", rest)
    load = os.getloadavg()[0]
    run, seconds = fine_tune(yours, work / "run", data_dir)
    after = read_accuracy(run, rest)
    metrics = json.loads((run / "metrics.json").read_text())
    n_rest = len(read_image_folders(rest))
    rows = [
        ("rest read exactly, shipped model", f"{before:.2%}"),
        ("rest read exactly, fine-tuned", f"{after:.2%}"),
        ("MNIST test accuracy, fine-tuned", f"{metrics['test_accuracy']:.2%}"),
        ("your validation accuracy, fine-tuned", f"{metrics['own_val_accuracy']:.2%}"),
        ("fine-tuning wall time (load average at start)", f"{seconds:.0f} s ({load:.1f})"),
    ]
    return "\n".join(
        [
            f"{machine()}; {10 * PER_CLASS} of scikit-learn's digits as yours, {n_rest} read",
            "",
            markdown_table(("scikit-learn digits", "value"), rows),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--choose", action="store_true", help="compare recipes on validation")
    parser.add_argument(
        "--only",
        action="append",
        choices=CANDIDATES,
        metavar="RECIPE",
        help="with --choose: compare only these recipes (repeatable; the table is printed, "
        "not written into the README)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", help="MNIST's directory (default: $DIGITREC_DATA_DIR)")
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()
    from sklearn.datasets import load_digits

    digits = load_digits()
    yours, rest = split(digits.target, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        render(digits.images, digits.target, yours, work / "yours")
        if args.choose:
            table = choose(work / "yours", work, args.data_dir, args.only or list(CANDIDATES))
        else:
            render(digits.images, digits.target, rest, work / "rest")
            table = measure(work / "yours", work / "rest", work, args.data_dir)
    print(table)
    if args.write_readme and not args.only:
        write_into_readme("own-choose" if args.choose else "own", table)


if __name__ == "__main__":
    main()
