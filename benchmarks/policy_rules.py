"""The rules of the ``auto`` reader, each measured: what it decides, and what changes without it.

``auto`` gives, image by image, the page reader's or the classifier's reading: the first rule of
``digitrec.read.policy.RULES`` that applies decides. On validation images, read with the shipped
models, this benchmark counts the images each rule decides, then reads those images again with
every rule but that one, and counts how many more or fewer are read right without it:

- pages of every layout of ``digitrec.synth`` (MNIST's validation digits in the validation
  style): the digit layouts read exactly, the pages without digits read as no digit;
- crops of one number as real documents have them (``synth.documents.document_lines``: MNIST's
  validation digits and, where the real sets are found, CVL valid's writers): their digits read
  exactly (anything else in a reading left out), the crops without a digit read as no digit.

All rules together are the reference, read in the same run. Validation images only: the rules
and their thresholds may be chosen on what this prints.

    python benchmarks/policy_rules.py [--pages 100] [--crops 600] [--seed 1100] [--write-readme]
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from common import REAL_SETS, machine, markdown_table, write_into_readme
from reading import MEASURES, Case, mnist_digits, pages, positive
from tqdm import tqdm

from digitrec.errors import DigitrecError
from digitrec.read.policy import RULES, Rule
from digitrec.read.policy import Case as RuleCase
from digitrec.read.recognizer import Recognizer
from digitrec.realdigits import load_cvl
from digitrec.synth.documents import document_lines
from digitrec.synth.pages import LAYOUTS
from digitrec.training.evaluate import digits_of

PAGES, CROPS = "pages", "crops"  # the two kinds of image, each with a column


@dataclass(frozen=True)
class Image:
    """A validation image: its ``kind`` (PAGES or CROPS), its ``group`` (a page's layout, or
    "number" / "no digit" for a crop), the image and whether a reading of it is right."""

    kind: str
    group: str
    case: Case
    right: Callable[[str], bool]


def page_images(count: int, seed: int) -> list[Image]:
    """``count`` validation pages of every layout: one without digits is right read as none."""
    digits = mnist_digits("validation")
    return [
        Image(PAGES, layout, case, lambda text, truth=case.truth: right_page(text, truth))
        for layout in LAYOUTS
        for case in pages(layout, digits, count, seed, "validation")
    ]


def right_page(text: str, truth: str) -> bool:
    return MEASURES["read exactly" if truth else "empty or rejected"](text, truth)


def crop_images(count: int, seed: int) -> list[Image]:
    """``count`` validation crops of one number as real documents have them, written by MNIST's
    validation writers and CVL valid's where the real sets are found."""
    images, labels = mnist_digits("validation")
    writers = np.full(len(labels), -1)
    try:
        cvl = load_cvl("valid", REAL_SETS)
    except DigitrecError as exc:
        print(f"crops of MNIST's digits alone: {exc}")
    else:
        images, labels = np.concatenate([images, cvl.images]), np.concatenate([labels, cvl.labels])
        writers = np.concatenate([writers, cvl.writers])
    lines = document_lines(images, labels, count, seed, "validation", writers)
    return [
        Image(
            CROPS,
            "number" if line.text else "no digit",
            Case(line.image, line.text),
            lambda text, truth=line.text: digits_of(text) == truth,
        )
        for line in tqdm(lines, "crops", count)
    ]


class RuleRecorder:
    """The rules of ``RULES``, each wrapped to note when it applies: the last rule that applied
    while an image was read is the one that decided it (the first that applies decides)."""

    def __init__(self, rules: tuple[Rule, ...] = RULES):
        self.decided: str | None = None
        self.rules = tuple(replace(rule, applies=self._noting(rule)) for rule in rules)

    def _noting(self, rule: Rule) -> Callable[[RuleCase], bool]:
        def applies(case: RuleCase) -> bool:
            if rule.applies(case):
                self.decided = rule.name
                return True
            return False

        return applies


def read_all(recognizer: Recognizer, images: list[Image]) -> tuple[list[str], list[str]]:
    """Each image's reading with every rule, and the name of the rule that decided it."""
    recorder = RuleRecorder()
    recognizer.rules = recorder.rules
    texts, deciders = [], []
    for image in tqdm(images, "all rules"):
        texts.append(recognizer.read(image.case.image).text)
        deciders.append(recorder.decided)
    return texts, deciders


def read_without(recognizer: Recognizer, rule: Rule, images: list[Image]) -> list[str]:
    """The readings of ``images`` with every rule but ``rule``."""
    recognizer.rules = tuple(other for other in RULES if other is not rule)
    return [recognizer.read(image.case.image).text for image in images]


def groups(images: list[Image]) -> str:
    """How many of ``images`` each group holds, most first: "37 (photo 29, gaps 5)"."""
    if not images:
        return "0"
    counts = Counter(image.group for image in images).most_common(3)
    return f"{len(images)} (" + ", ".join(f"{group} {n}" for group, n in counts) + ")"


def change(before: list[bool], after: list[bool], images: list[Image]) -> str:
    """How many more (+) or fewer (-) of ``images`` are right ``after`` than ``before``, with
    the groups that lose or gain most."""
    moved = Counter()
    for image, was, now in zip(images, before, after, strict=True):
        moved[image.group] += int(now) - int(was)
    total = sum(moved.values())
    if not any(moved.values()):
        return "no change" if images else "-"
    top = sorted((item for item in moved.items() if item[1]), key=lambda item: -abs(item[1]))
    return f"{total:+d} (" + ", ".join(f"{group} {n:+d}" for group, n in top[:3]) + ")"


def rule_rows(
    recognizer: Recognizer, images: list[Image], texts: list[str], deciders: list[str]
) -> list[list[object]]:
    """A row per rule: the pages and crops it decides, and the change in each without it."""
    rows = []
    for k, rule in enumerate(tqdm(RULES, "without each rule"), 1):
        read = zip(images, texts, deciders, strict=True)
        mine = [(image, text) for image, text, name in read if name == rule.name]
        last = rule is RULES[-1]  # decides what no other rule does: nothing to read without it
        after = [] if last else read_without(recognizer, rule, [image for image, _ in mine])
        row: list[object] = [k, rule.name, rule.gives]
        for kind in (PAGES, CROPS):
            picked = [j for j, (image, _) in enumerate(mine) if image.kind == kind]
            decided = [mine[j][0] for j in picked]
            row.append(groups(decided))
            if last:
                row.append("-")
                continue
            now = [mine[j][0].right(mine[j][1]) for j in picked]
            without = [mine[j][0].right(after[j]) for j in picked]
            row.append(change(now, without, decided))
        rows.append(row)
    return rows


def summary(images: list[Image], texts: list[str]) -> str:
    """How many pages and crops all the rules together read right."""
    parts = []
    for kind in (PAGES, CROPS):
        read = [
            (image, text) for image, text in zip(images, texts, strict=True) if image.kind == kind
        ]
        right = sum(image.right(text) for image, text in read)
        parts.append(f"{right} of {len(read)} {kind}")
    return "With all the rules: " + " and ".join(parts) + " read right."


HEADER = [
    "#",
    "rule",
    "reads",
    "pages it decides",
    "pages read right without it",
    "crops it decides",
    "crops read right without it",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=positive, default=100, help="pages per layout")
    parser.add_argument("--crops", type=positive, default=600, help="crops of one number")
    parser.add_argument("--seed", type=int, default=1100)
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()
    images = page_images(args.pages, args.seed) + crop_images(args.crops, args.seed + 1)
    recognizer = Recognizer.load("default", threads=1)
    texts, deciders = read_all(recognizer, images)
    text = (
        f"{args.pages} validation pages of each of the {len(LAYOUTS)} layouts and {args.crops} "
        f"validation crops of one number, seed {args.seed}, read with the shipped models; "
        f"{machine()}.\n\n{summary(images, texts)}\n\n"
        f"{markdown_table(HEADER, rule_rows(recognizer, images, texts, deciders))}"
    )
    print(text)
    if args.write_readme:
        write_into_readme("policy-rules", text)


if __name__ == "__main__":
    main()
