"""Reading users' images: models compared on renders of MNIST *validation* digits.

For each ONNX model (a path, or "default" for the shipped one), the recognizer reads the same
images, made with `digitrec.synthesis` from the validation split (the last 5,000 training images;
never the test set, so models and settings may be chosen on this table):

- single digits rendered as users' images: read correctly, rejected ("?"), misread;
- strings of 3-10 such digits (varied gaps, heights, slant): read exactly;
- the validation digits as they are (clean MNIST): accuracy of the calibrated model.

Accuracy, not speed: the figures are deterministic for a given `--seed`, so one run suffices.
The rejection threshold of each model was chosen on its own renders of these digits (0.5% least
confident, other random draws), so its rejection rate here is near 0.5% by construction.

    python benchmarks/reading.py default runs/x/model.onnx [--digits 2000] [--strings 400]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, markdown_table, write_into_readme

from digitrec.config import TrainConfig
from digitrec.data import as_model_input, load_dataset, split_validation
from digitrec.recognizer import Recognizer
from digitrec.synthesis import digit_string_image, user_digit_image


def render(images: np.ndarray, labels: np.ndarray, digits: int, strings: int, seed: int):
    """User-style single-digit and string images with their true texts."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(images), digits, replace=False)
    singles = [(user_digit_image(images[i], rng), str(labels[i])) for i in tqdm(chosen, "digits")]
    rows = []
    for _ in tqdm(range(strings), "strings"):
        picked = rng.choice(len(images), rng.integers(3, 11), replace=False)
        image, _ = digit_string_image([images[i] for i in picked], rng)
        rows.append((image, "".join(str(labels[i]) for i in picked)))
    return singles, rows


def texts(recognizer: Recognizer, cases: list) -> list[tuple[str, str]]:
    """(read text, true text) for each case, read in batches of 100 images."""
    read = []
    for start in range(0, len(cases), 100):
        batch = cases[start : start + 100]
        readings = recognizer.read_many([image for image, _ in batch])
        read += [(r.text, truth) for r, (_, truth) in zip(readings, batch, strict=True)]
    return read


def measure(model: str, singles: list, rows: list, x_val: np.ndarray, y_val: np.ndarray) -> list:
    """One table row: the model's figures on the rendered and the clean validation digits."""
    recognizer = Recognizer.load(model)
    digit_reads = texts(recognizer, singles)
    correct = sum(text == truth for text, truth in digit_reads)
    rejected = sum(text == "?" for text, _ in digit_reads)
    exact = sum(text == truth for text, truth in texts(recognizer, rows))
    clean = recognizer.predict_proba(as_model_input(x_val)).argmax(axis=1) == y_val
    n = len(singles)
    return [
        model,
        f"{correct / n:.2%}",
        f"{rejected / n:.2%}",
        f"{(n - correct - rejected) / n:.2%}",
        f"{exact / len(rows):.2%}",
        f"{clean.mean():.2%}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help='ONNX files, or "default"')
    parser.add_argument("--digits", type=int, default=2000, help="single digits to render")
    parser.add_argument("--strings", type=int, default=400, help="digit strings to render")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()

    data = load_dataset("mnist", progress=False)
    _, _, x_val, y_val = split_validation(
        data.train_images, data.train_labels, TrainConfig.val_size
    )
    singles, rows = render(x_val, y_val, args.digits, args.strings, args.seed)
    table = markdown_table(
        [
            "model",
            f"digits read correctly ({args.digits})",
            "rejected",
            "misread",
            f"strings read exactly ({args.strings})",
            f"clean validation accuracy ({len(x_val)})",
        ],
        [measure(model, singles, rows, x_val, y_val) for model in args.models],
    )
    text = (
        f"Reading users' images made from MNIST validation digits (seed {args.seed}); "
        f"{machine()}.\n\n{table}"
    )
    print(text)
    if args.write_readme:
        write_into_readme("reading", text)


if __name__ == "__main__":
    main()
