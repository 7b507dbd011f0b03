"""Line finding: how often `digitrec.read.line_finder.find_lines` finds exactly the written lines.

Pages are generated with `digitrec.synth.pages.page_sample` from the *validation* split (the
last 5,000 training images, in the training style; the detector's settings may be chosen on
this table), or with `--split test` from the test split in the test style (for the record,
never for choosing). For each layout, over `--pages` pages:

- count right: the number of lines found equals the number written;
- exact: count right, and every written line has its own found line with IoU >= 0.5 (boxes:
  the union of the line's digits' ink against the found box);
- lines found: the fraction of all written lines that have their own found line (IoU >= 0.5);
- others/page: found lines matching no written line (printed labels, stamps, scribbles...);
- ms/page: the median time of `find_lines` on one page.

`--plain` leaves out distractors (specks, stamps, scribbles, printed words) and form labels, to
tell the finding of written lines from the printed matter it also finds.

    python benchmarks/lines.py [--pages 200] [--split validation|test] [--seed 0] [--plain]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, markdown_table, median

from digitrec.data import load_dataset, split_validation
from digitrec.read.boxes import iou
from digitrec.read.line_finder import find_lines
from digitrec.synth.pages import page_sample
from digitrec.synth.style import PageStyle, page_style
from digitrec.training.config import TrainConfig

LAYOUTS = ("multiline", "comb", "photo", "touching", "gaps")


def matched(truth: list, found: list) -> int:
    """How many true boxes, in turn, pair with their own found box (the best still free) at
    IoU >= 0.5."""
    free, count = list(found), 0
    for box in truth:
        best = max(free, key=lambda other: iou(box, other), default=None)
        if best is not None and iou(box, best) >= 0.5:
            free.remove(best)
            count += 1
    return count


def measure(layout: str, images, labels, pages: int, seed: int, style: PageStyle) -> list:
    """One table row: the layout's figures over ``pages`` generated pages."""
    counts = exact = lines = found_lines = extra = 0
    times = []
    for n in tqdm(range(pages), layout, leave=False):
        page = page_sample(layout, images, labels, seed * 100_000 + n, style)
        start = time.perf_counter()
        found = [line.box for line in find_lines(page.image)]
        times.append(time.perf_counter() - start)
        truth = [line.box for line in page.lines]
        hits = matched(truth, found)
        counts += len(found) == len(truth)
        exact += len(found) == len(truth) == hits
        lines, found_lines, extra = (
            lines + len(truth),
            found_lines + hits,
            extra + len(found) - hits,
        )
    shares = (counts / pages, exact / pages, found_lines / lines)
    return [
        layout,
        pages,
        *(f"{share:.1%}" for share in shares),
        f"{extra / pages:.2f}",
        f"{median(times) * 1e3:.0f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=200, help="pages per layout")
    parser.add_argument("--split", choices=("validation", "test"), default="validation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--plain", action="store_true", help="pages without distractors and form labels"
    )
    args = parser.parse_args()

    data = load_dataset("mnist", progress=False)
    if args.split == "test":
        images, labels = data.test_images, data.test_labels
    else:
        _, _, images, labels = split_validation(
            data.train_images, data.train_labels, TrainConfig.val_size
        )
    style = page_style(args.split)
    if args.plain:
        printed = replace(style.print, distractor_probability=0.0, field_label_probability=0.0)
        style = replace(style, print=printed)
    rows = [measure(layout, images, labels, args.pages, args.seed, style) for layout in LAYOUTS]
    header = ["layout", "pages", "count right", "exact", "lines found", "others/page", "ms/page"]
    table = markdown_table(header, rows)
    pages = f"{args.split} pages{' without distractors or labels' if args.plain else ''}"
    print(f"Line finding on generated {pages} (seed {args.seed}); {machine()}.\n\n{table}")


if __name__ == "__main__":
    main()
