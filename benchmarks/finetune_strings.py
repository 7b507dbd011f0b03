"""Teaching the page reader your own strings: a shipped line model fine-tuned on 80% of
ORAND-CAR-A's cheque amounts (``digitrec train-lines --init NAME --strings DIR``, its default
recipe), then the other 20%, which played no part in it, read by the fine-tuned run and by the
shipped models in the same run; and generated validation pages of every layout and lines of CVL
valid writers read by both, to see what the fine-tuning costs on what the reader read before.

    python benchmarks/finetune_strings.py [--init default] [--seed 0] [--epochs N]
        [--pages 20] [--cvl-lines 200] [--out RUN] [--write-readme]

The cheques' labels hold digits only (their separators and end marks are in the images), so a
string is read exactly when the digits read, in order, are its digits (``string_scores``, as
``digitrec evaluate --strings`` scores). The held-out 20% are read the way ``digitrec predict
--model RUN`` reads (``Recognizer.load(RUN)``, the reader "auto"), and also by the line model
alone on the whole image (``LineReader``), as if the crop were known to hold one number.
``--write-readme`` fills the ``finetune_strings`` block of docs/benchmarks/finetune-strings.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from common import REAL_SETS, machine, markdown_table, write_into_readme

from digitrec.read.image_folders import string_labels
from digitrec.read.line_reader import LineReader
from digitrec.read.loader import CROP_LINE_MODEL
from digitrec.read.recognizer import Recognizer
from digitrec.realdigits import load_cvl, orand_folder
from digitrec.synth.documents import writer_lines
from digitrec.training.evaluate import digits_of, string_scores
from digitrec.training.line_recipe import train_lines
from digitrec.training.line_settings import StringsRecipe, labels_digest
from digitrec.training.line_strings import StringImage, split_strings
from digitrec.training.page_rejection import page_accuracy, validation_pages

TEST_SHARE = 0.2
CVL_LINES_SEED = 904  # CVL valid writers' lines read here (lower seeds chose settings)
PAGES_SEED = 50_000  # the pages read here: none of the rejection's (10,000) nor the card's (40,000)


@dataclass(frozen=True)
class Split:
    """The two strings folders made of ORAND-CAR-A: ``train`` to fine-tune on, ``test`` held out."""

    train: Path
    test: Path


def split_orand(folder: Path, out: Path, seed: int) -> Split:
    """ORAND-CAR-A's amounts split 80/20 (seeded, the same share of every length) into two
    strings folders under ``out``: links to the images and a ``labels.csv`` each."""
    with (folder / "labels.csv").open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    listed = [StringImage(folder / "train" / row["file"], row["text"], None) for row in rows]
    train, test = split_strings(listed, TEST_SHARE, seed)
    for name, part in (("train", train), ("test", test)):
        write_strings_folder(out / name, part)
    return Split(out / "train", out / "test")


def write_strings_folder(folder: Path, strings: list[StringImage]) -> None:
    """A strings folder: a link to each image and a ``labels.csv`` (columns ``file,text``)."""
    folder.mkdir(parents=True)
    with (folder / "labels.csv").open("w", newline="") as stream:
        table = csv.writer(stream)
        table.writerow(["file", "text"])
        for string in strings:
            (folder / string.path.name).symlink_to(string.path.resolve())
            table.writerow([string.path.name, string.text])


def read_strings(folder: Path, reader) -> dict:
    """``string_scores`` of a reader (image path → text) on a strings folder."""
    pairs = [(truth, digits_of(reader(path))) for path, truth in string_labels(folder).items()]
    return string_scores(pairs)


def readers(run: Path, init: str) -> dict[str, object]:
    """Each way of reading measured: the whole read path with the fine-tuned run and with the
    shipped models, and the fine-tuned line model and the one it started from alone on the
    whole image."""
    tuned, shipped = Recognizer.load(run), Recognizer.load("default")
    tuned_lines, shipped_lines = LineReader.load(run), LineReader.load(init)
    return {
        "fine-tuned, as predict reads (auto)": lambda path: tuned.read(path).text,
        "shipped, as predict reads (auto)": lambda path: shipped.read(path).text,
        "fine-tuned line model alone": lambda path: tuned_lines.read_line(path).text,
        f"shipped line model {init!r} alone": lambda path: shipped_lines.read_line(path).text,
    }


def cvl_lines_read(run: Path, count: int) -> dict[str, float]:
    """The share of ``count`` lines of 3-10 digits of one CVL valid writer each (validation
    style) whose digits are read exactly (reader "auto"), by the fine-tuned run and the shipped
    models."""
    part = load_cvl("valid", REAL_SETS)
    lines = list(
        writer_lines(part.images, part.labels, part.writers, count, CVL_LINES_SEED, "validation")
    )
    return {
        name: sum(digits_of(reader.read(line.image).text) == line.text for line in lines) / count
        for name, reader in (("fine-tuned", Recognizer.load(run)), ("shipped", Recognizer.load()))
    }


def pages_read(run: Path, per_layout: int) -> dict[str, dict[str, float]]:
    """The share of generated validation pages of every layout read exactly (reader "auto"),
    with the fine-tuned run and with the shipped models."""
    pages = validation_pages(per_layout, seed=PAGES_SEED)
    return {
        name: page_accuracy(Recognizer.load(model), pages, "auto")
        for name, model in (("fine-tuned", run), ("shipped", "default"))
    }


def report(
    strings: dict[str, dict],
    pages: dict[str, dict[str, float]],
    cvl: dict[str, float],
    facts: dict,
) -> str:
    """The tables and how they were measured, as Markdown."""
    rows = [
        [name, f"{s['exact_accuracy']:.1%}", f"{s['digit_accuracy']:.1%}", s["strings"]]
        for name, s in strings.items()
    ]
    held_out = markdown_table(["read by", "read exactly", "digits right", "strings"], rows)
    layouts = list(next(iter(pages.values())))
    page_rows = [[layout, *(f"{pages[n][layout]:.0%}" for n in pages)] for layout in layouts]
    means = {name: sum(table.values()) / len(table) for name, table in pages.items()}
    page_rows.append(["**mean**", *(f"**{means[n]:.1%}**" for n in pages)])
    cvl_row = f"CVL valid writers' lines of 3-10 ({facts['cvl_lines']}, digits)"
    page_rows.append([cvl_row, *(f"{cvl[n]:.1%}" for n in pages)])
    page_table = markdown_table(["layout", *pages], page_rows)
    return "\n".join(
        [
            f"Measured on {machine()}.",
            "",
            f"ORAND-CAR-A's {facts['strings']} amounts split {1 - TEST_SHARE:.0%}/{TEST_SHARE:.0%} "
            f"(seed {facts['seed']}, the same share of every length): fine-tuned from the shipped "
            f"line model `{facts['init']}` on {facts['train']} of them ({facts['learned']} learned from, "
            f"{facts['chose']} held out to choose the epoch; {facts['epochs']} epochs, epoch "
            f"{facts['best_epoch']} kept) in {facts['minutes']:.0f} minutes of training "
            f"({facts['total']:.0f} minutes with the export, the rejection and the model card); "
            f"the other {facts['test']} read:",
            "",
            held_out,
            "",
            f'Generated validation pages ({facts["pages"]} of every layout, read by "auto"), '
            "read exactly, and lines of CVL valid writers written by the generator (validation "
            "style), their digits read exactly:",
            "",
            page_table,
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--init", default=CROP_LINE_MODEL, help="the shipped line model to start from"
    )
    parser.add_argument("--seed", type=int, default=0, help="the 80/20 split's and the run's")
    parser.add_argument("--epochs", type=int, help="fine-tuning epochs (default: the recipe's)")
    parser.add_argument("--pages", type=int, default=20, help="validation pages of every layout")
    parser.add_argument("--cvl-lines", type=int, default=200, help="CVL valid writers' lines")
    parser.add_argument("--out", type=Path, help="the run directory (default: a temporary one)")
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        split = split_orand(orand_folder(REAL_SETS), Path(tmp), args.seed)
        run = args.out or Path(tmp) / "run"
        digest = labels_digest(split.train)
        recipe = StringsRecipe(str(split.train), digest, args.init, seed=args.seed)
        if args.epochs:
            recipe = replace(recipe, epochs=args.epochs)
        started = time.perf_counter()
        train_lines(recipe, run, progress=print)
        total = time.perf_counter() - started
        strings = {
            name: read_strings(split.test, reader)
            for name, reader in readers(run, args.init).items()
        }
        pages = pages_read(run, args.pages)
        cvl = cvl_lines_read(run, args.cvl_lines)
        tuning = LineReader.load(run).metadata["fine_tuning"]
        metrics_seconds = json.loads((run / "metrics.json").read_text())["train_seconds"]
        facts = {
            "strings": len(string_labels(split.train)) + len(string_labels(split.test)),
            "seed": args.seed,
            "train": len(string_labels(split.train)),
            "learned": tuning["strings"]["train"],
            "chose": tuning["strings"]["val"],
            "epochs": recipe.epochs,
            "best_epoch": tuning["best_epoch"],
            "minutes": metrics_seconds / 60,
            "total": total / 60,
            "test": len(string_labels(split.test)),
            "pages": args.pages,
            "cvl_lines": args.cvl_lines,
            "init": args.init,
        }
        text = report(strings, pages, cvl, facts)
    print(text)
    if args.write_readme:
        write_into_readme("finetune_strings", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
