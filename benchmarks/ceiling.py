"""What MNIST's own digits allow: the share of each digit layout's pages a reader could read
exactly if it read every digit as well as the shipped classifier reads clean MNIST digits.

The reference, measured in the same run: the shipped classifier (``Recognizer.load("default")``)
on the split's digits as MNIST gives them (alone, pre-centred 28×28: no page, pen, box, touching
neighbour or camera), its accuracy ``p``. The pages are those of ``benchmarks/reading.py`` (the
same rows and seeds); their digits are counted. A page of ``n`` digits is read exactly only if
all ``n`` are, so the ceiling of a layout is the mean over its pages of ``p ** n`` (each page
draws its digits at random, so errors are taken as independent). The table also gives the
accuracy per digit each layout's target (the issue's) asks: the ``p`` at which that mean reaches
the target. The ceiling per number (a line of the page) is there too, for comparison with pages
holding one number. ``--split validation`` uses the validation digits and style, ``--split test``
the test digits and style (no reader reads the pages: only their digits are counted).

    python benchmarks/ceiling.py [--pages 300] [--split validation] [--seed 0] [--write-readme]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import brentq

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, markdown_table, write_into_readme
from reading import DIGIT_LAYOUTS, SPLITS, mnist_digits, pages, positive

from digitrec.read.recognizer import Recognizer

TARGETS = {"photo": 0.99, "touching": 0.97, "comb": 0.98, "gaps": 0.98, "multiline": 0.97}


def ceiling(accuracy: float, counts: np.ndarray) -> float:
    """The share of pages of ``counts`` digits read exactly when each digit is read right with
    probability ``accuracy``, independently."""
    return float(np.mean(accuracy ** np.asarray(counts, np.float64)))


def accuracy_needed(counts: np.ndarray, target: float) -> float:
    """The accuracy per digit at which ``ceiling`` reaches ``target`` (it grows with the
    accuracy, from 0 to 1)."""
    return float(brentq(lambda accuracy: ceiling(accuracy, counts) - target, 0.0, 1.0, xtol=1e-12))


def classifier_accuracy(images: np.ndarray, labels: np.ndarray) -> float:
    """The shipped classifier's accuracy on MNIST digits as MNIST gives them."""
    recognizer = Recognizer.load("default", lines=None)
    probs = recognizer.predict_proba(images.astype(np.float32) / 255)
    return float(np.mean(probs.argmax(axis=1) == labels))


def table(split: str, count: int, seed: int) -> str:
    """The markdown table: a row per digit layout."""
    digits = mnist_digits(split)
    accuracy = classifier_accuracy(*digits)
    rows = []
    for layout in DIGIT_LAYOUTS:
        truths = [case.truth for case in pages(layout, digits, count, seed, split)]
        counts = np.array([sum(char.isdigit() for char in truth) for truth in truths])
        numbers = np.array([len(number) for truth in truths for number in truth.split("\n")])
        target = TARGETS[layout]
        rows.append(
            [
                f"{layout} ({len(truths)})",
                f"{len(numbers) / len(truths):.1f}",
                f"{numbers.mean():.1f} ({numbers.min()}-{numbers.max()})",
                f"{counts.mean():.1f} ({counts.min()}-{counts.max()})",
                f"{ceiling(accuracy, counts):.1%}",
                f"{ceiling(accuracy, numbers):.1%}",
                f"{target:.0%}",
                f"{accuracy_needed(counts, target):.2%}",
            ]
        )
    header = [
        "pages",
        "numbers per page",
        "digits per number: mean (range)",
        "digits per page: mean (range)",
        f"ceiling per page at {accuracy:.2%} per digit",
        "ceiling per number",
        "target (pages)",
        "accuracy per digit the target asks",
    ]
    return (
        f"The shipped classifier reads {accuracy:.2%} of the {len(digits[1]):,} MNIST {split} "
        f"digits as MNIST gives them.\n\n{markdown_table(header, rows)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=positive, default=300, help="pages per layout")
    parser.add_argument("--split", choices=SPLITS, default="validation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()
    text = (
        f"Digit layouts made from the MNIST **{args.split}** digits in the {args.split} style "
        f"(the pages of `benchmarks/reading.py`), seed {args.seed}; {machine()}.\n\n"
        f"{table(args.split, args.pages, args.seed)}"
    )
    print(text)
    if args.write_readme:
        write_into_readme(f"ceiling-{args.split}", text)


if __name__ == "__main__":
    main()
