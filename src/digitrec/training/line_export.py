"""Export a trained line recognizer to ONNX, verified, with the metadata ``LineReader`` needs.

The export goes through Keras's own ``model.export`` (as ``digitrec.training.export`` does for the digit
classifiers). Before the file is renamed into place, ONNX Runtime's frame posteriors must match
Keras's on validation lines within ``PARITY_TOLERANCE``, otherwise the file is deleted and a
``ModelError`` says by how much they differed; the exported reader's exact-line accuracy on the
run's validation lines is measured through ``LineReader`` and stored in the metadata.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np

from digitrec import __version__
from digitrec.data import load_dataset
from digitrec.errors import ModelError
from digitrec.files import atomic_path, read_json
from digitrec.read.line_reader import ALPHABET, BLANK, HEIGHT, LineReader
from digitrec.read.loader import SHIPPED_LINE_MODELS
from digitrec.read.page_reader import FINE_TUNED
from digitrec.read.recognizer import Recognizer
from digitrec.realdigits import CVL_SOURCE
from digitrec.synth.style import page_style
from digitrec.training.export import write_metadata
from digitrec.training.line_batches import LineSource, batch_arrays, prepared
from digitrec.training.line_filter import FILTER_MODEL, FILTER_RECORD
from digitrec.training.line_settings import (
    SHIPPED_KERAS,
    LineRecipe,
    LineTrainSettings,
    StringsRecipe,
    recipe_flags,
    strings_recipe_of,
)
from digitrec.training.line_training import validation_digits
from digitrec.training.models import as_float32
from digitrec.training.page_rejection import page_accuracy, validation_pages

PARITY_LINES = 64
CARD_SEED = 40_000  # the card's validation pages (the rejection's start at 10,000)
PARITY_TOLERANCE = 1e-4
INPUT_DESCRIPTION = {
    "shape": [None, HEIGHT, None, 1],
    "dtype": "float32",
    "layout": "NHWC; the width a multiple of the stride, lines of a batch zero-padded on the right",
    "range": [0.0, 1.0],
    "polarity": "white ink on black background",
    "normalization": "digitrec.read.line_reader.prepare_line",
}


def export_line_model(
    run_dir: str | Path,
    out: str | Path | None = None,
    data_dir: str | Path | None = None,
    source: LineSource | None = None,
    recipe: LineRecipe | None = None,
    fine_tuning: dict[str, Any] | None = None,
    strings: Sequence[Any] = (),
) -> Path:
    """Export a line training run's model to ONNX (default ``RUN_DIR/model.onnx``), verified;
    return the output path. ``source`` must make the same lines as the run's (its default);
    ``recipe``, the one the run follows (``line_recipe``), is stored for the model card; so is
    ``fine_tuning``, a fine-tuning run's record (``line_strings``), with the share of its
    held-out ``strings`` (each with ``image`` and ``text``) the exported model reads exactly."""
    run_dir = Path(run_dir)
    if not (run_dir / "model.keras").is_file() or not (run_dir / "run.json").is_file():
        raise ModelError(f"{run_dir}: not a complete line training run (no model.keras)")
    run = read_json(run_dir / "run.json")
    try:
        settings = LineTrainSettings(**run["settings"])
    except (KeyError, TypeError) as exc:
        raise ModelError(
            f"{run_dir}/run.json: not a line training run's settings ({exc})"
        ) from None
    model = with_filter(as_float32(keras.saving.load_model(run_dir / "model.keras")), run_dir)
    val = validation_digits(settings, load_dataset(settings.dataset, data_dir, progress=False))
    source = source or val.source(settings)
    x_val, y_val = val.images, val.labels
    samples = list(source(x_val, y_val, settings.val_lines, settings.seed, style="train"))
    # Lines that did not choose the epoch: the best epoch's figure on its own lines is biased up.
    fresh = list(source(x_val, y_val, settings.val_lines, settings.seed + 1, style="train"))
    parity_inputs, _ = batch_arrays(list(prepared(samples[:PARITY_LINES], settings.stride)))
    expected = [np.asarray(output) for output in keras.tree.flatten(model(parity_inputs))]
    out = Path(out) if out else run_dir / "model.onnx"
    metadata: dict[str, Any] = {
        "model_name": model.name,
        "alphabet": ALPHABET,
        "blank": BLANK,
        "height": HEIGHT,
        "stride": settings.stride,
        "input": INPUT_DESCRIPTION,
        "output": "frame posteriors (N, width / stride, classes): the digits, then the CTC blank",
    }
    if len(expected) > 1:
        metadata["writing_output"] = (
            "second output: the probability (N, 1) that each line holds handwritten digits"
        )
        metadata["line_filter"] = filter_record(run_dir)
    if recipe is not None:
        metadata["recipe"] = asdict(recipe)
    if fine_tuning is not None:
        metadata[FINE_TUNED] = fine_tuning
    with atomic_path(out, suffix=".onnx") as tmp:
        model.export(str(tmp), format="onnx", verbose=False)
        write_metadata(tmp, metadata)
        reader = LineReader.load(tmp)
        difference = check_outputs(expected, reader.outputs(parity_inputs), out)
        metadata.update(
            val_exact=exact_share(reader, samples),
            val_lines=len(samples),
            fresh_val_exact=exact_share(reader, fresh),
            fresh_val_lines=len(fresh),
            parity={"lines": len(parity_inputs), "max_difference": difference},
            training_run=str(run_dir),
            training_settings=asdict(settings),
            trained=run.get("created"),
            parameters=int(model.count_params()),
            digitrec_version=__version__,
            versions=run.get("versions", {}),
            exported=datetime.now().isoformat(timespec="seconds"),
        )
        if strings:
            metadata[FINE_TUNED] = {
                **metadata[FINE_TUNED],
                "strings_val_exact": exact_share(reader, strings),
                "strings_val": len(strings),
            }
        write_metadata(tmp, metadata)
        check_outputs(expected, LineReader.load(tmp).outputs(parity_inputs), out)
    return out


def exact_share(reader: LineReader, samples: list[Any]) -> float:
    """The share of the line samples the reader reads exactly."""
    readings = reader.read_lines([sample.image for sample in samples])
    return sum(r.text == s.text for r, s in zip(readings, samples, strict=True)) / len(samples)


def with_filter(model: keras.Model, run_dir: Path) -> keras.Model:
    """The line model, with the run's line filter (``line_filter``), if it has one, as a
    second output on the same input."""
    path = run_dir / FILTER_MODEL
    if not path.is_file():
        return model
    return joined(model, keras.saving.load_model(path))


def joined(model: keras.Model, line_filter: keras.Model) -> keras.Model:
    """The line model with ``line_filter`` as a second output on the same input."""
    line = model.inputs[0]  # one input, not a list of one: calls pass the lines alone
    return keras.Model(line, [model.outputs[0], line_filter(line)], name=model.name)


def filter_record(run_dir: Path) -> dict[str, Any]:
    """What the model card says of the line filter: its data, settings and validation."""
    record = read_json(run_dir / FILTER_RECORD)
    return {key: value for key, value in record.items() if key != "history"}


def check_outputs(expected: list[np.ndarray], actual: list[np.ndarray], out: Path) -> float:
    """``check_parity`` of every output; the largest difference."""
    if len(actual) != len(expected):
        raise ModelError(
            f"export to {out} failed its check: {len(actual)} outputs, Keras gives "
            f"{len(expected)}; the output was deleted"
        )
    return max(check_parity(e, a, out) for e, a in zip(expected, actual, strict=True))


def check_parity(expected: np.ndarray, actual: np.ndarray, out: Path) -> float:
    """The largest posterior difference from Keras; ``ModelError`` above ``PARITY_TOLERANCE``."""
    if actual.shape != expected.shape:
        raise ModelError(
            f"export to {out} failed its check: output shape {actual.shape}, Keras gives "
            f"{expected.shape}; the output was deleted"
        )
    difference = float(np.abs(actual - expected).max())
    if difference > PARITY_TOLERANCE:
        raise ModelError(
            f"export to {out} failed its check on {len(expected)} validation lines: largest "
            f"posterior difference {difference:.2e} (allowed {PARITY_TOLERANCE:.0e}); the output "
            "was deleted"
        )
    return difference


def card_figures(
    model: Path, per_layout: int, data_dir: str | Path | None = None
) -> dict[str, dict[str, float]]:
    """The model card's tables: for each reader of the shipped classifier with this line model,
    the share of ``per_layout`` validation pages of every layout read exactly (pages other than
    those the rejection was fitted on); none for ``per_layout`` 0."""
    if not per_layout:
        return {}
    recognizer = Recognizer.load("default", lines=model)
    pages = validation_pages(per_layout, data_dir, seed=CARD_SEED)
    where = f"{per_layout} per layout, validation digits, train style, not the rejection's"
    titles = {
        "auto": f"Validation pages ({where}): auto",
        "pages": "Validation pages: the page reader alone",
        "digits": "Validation pages: the single-digit classifier alone",
    }
    return {title: page_accuracy(recognizer, pages, reader) for reader, title in titles.items()}


def write_line_card(model: str | Path, out: str | Path, figures: dict[str, Any]) -> Path:
    """A model card (Markdown) for an exported line model: its data, settings, the rejection
    fitted on validation pages and the page figures measured (``figures``: name → per-layout
    fractions), and how to reproduce it; written whole or not at all."""
    meta = LineReader.load(model).metadata
    settings = meta.get("training_settings", {})
    rows = [
        ("parameters", f"{meta.get('parameters', 0):,}"),
        ("file size", f"{Path(model).stat().st_size:,} bytes"),
        ("trained", meta.get("trained")),
        ("exported", meta.get("exported")),
        *_lines_read(meta),
        ("largest difference from Keras", f"{meta['parity']['max_difference']:.1e}"),
        ("temperature", f"{meta.get('temperature', 1.0):.4f}"),
        ("digit threshold ('?')", f"{meta.get('digit_threshold', 0.0):.4f}"),
        ("line threshold (no writing)", f"{meta.get('line_threshold', 0.0):.4f}"),
    ]
    if "line_filter" in meta:
        found = meta["line_filter"]
        rows += [
            (
                "line filter: validation crops right",
                f"{found['val_accuracy']:.2%} of {found['val_crops']}",
            ),
            (
                "line filter: training crops",
                f"{found['train_crops']:,} ({found['train_share_with_digits']:.0%} with digits)",
            ),
            ("writing threshold (line filter)", f"{meta.get('writing_threshold', 0.0):.2f}"),
            (
                "region threshold (line filter on the classifier's ink)",
                f"{meta.get('region_threshold', 0.0):.4f}",
            ),
        ]
    lines = [f"# Model card: line reader ({meta.get('model_name')})", "", "| | |", "| --- | --- |"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    for title, table in figures.items():
        lines += ["", f"## {title}", "", "| layout | pages read exactly |", "| --- | --- |"]
        lines += [f"| {layout} | {value:.1%} |" for layout, value in table.items()]
    if FINE_TUNED in meta:
        lines += fine_tuning_section(meta[FINE_TUNED])
    lines += ["", "## Training settings", "", "```json", json.dumps(settings, indent=2), "```"]
    tail = CARD_TAIL.format(
        lines=training_lines(settings),
        empty=f"{page_style('train').print.empty_line_fraction:.0%}",
        val_lines=settings.get("val_lines", 0),
        val_digits=validation_words(settings),
        reproduce=reproduce(meta.get("recipe")),
    )
    if FINE_TUNED in meta:
        recipe = strings_recipe_of(meta[FINE_TUNED]["recipe"])
        tail = FINE_TUNING_TAIL.format(
            reproduce=reproduce_fine_tuning(meta[FINE_TUNED]),
            generated=meta[FINE_TUNED]["generated"],
            own=recipe.own_per_batch,
            lines=recipe.batch_size - recipe.own_per_batch,
        )
    with atomic_path(Path(out), suffix=".md") as tmp:
        tmp.write_text("\n".join(lines) + "\n" + tail)
    return Path(out)


def fine_tuning_section(record: dict[str, Any]) -> list[str]:
    """The card's account of a fine-tuning on your strings (``line_strings``)."""
    recipe, strings = record["recipe"], record["strings"]
    rows = [
        (
            "started from",
            f"the shipped line model {recipe['init']!r}"
            if recipe["init"] in SHIPPED_KERAS
            else recipe["init"],
        ),
        (
            "your strings",
            f"{recipe['strings']} (labels.csv SHA-256 {recipe['labels_digest'][:12]}…)",
        ),
        (
            "learned from / held out / skipped",
            f"{strings['train']} / {strings['val']} / {strings['skipped']}",
        ),
        ("held-out strings read exactly before fine-tuning", f"{record['start_val_exact']:.2%}"),
        ("epoch kept (0: the starting model)", str(record["best_epoch"])),
    ]
    if "strings_val_exact" in record:
        rows.append(
            (
                "held-out strings read exactly by this file (they chose the epoch)",
                f"{record['strings_val_exact']:.2%} of {record['strings_val']}",
            )
        )
    lines = ["", "## Fine-tuning on your strings", "", "| | |", "| --- | --- |"]
    return lines + [f"| {name} | {value} |" for name, value in rows]


def reproduce_fine_tuning(record: dict[str, Any]) -> str:
    """The command that makes a fine-tuned model again (your strings in the same folder)."""
    recipe = asdict(strings_recipe_of(record["recipe"]))
    defaults = asdict(StringsRecipe())
    given = [
        f"--{name.replace('_', '-')} {shlex.quote(str(value))}"
        for name, value in recipe.items()
        if name not in ("strings", "labels_digest", "init") and value != defaults[name]
    ]
    command = " ".join(
        [
            "digitrec train-lines",
            f"--init {shlex.quote(recipe['init'])}",
            f"--strings {shlex.quote(recipe['strings'])}",
            "--out runs/strings",
            *given,
        ]
    )
    return f"```sh\n{command}\n```"


def training_lines(settings: dict[str, Any]) -> str:
    """The card's words for the lines a model trained on, and where it started."""
    if settings.get("source") == "documents":
        source = (
            '``digitrec.synth.documents.document_lines`` (style "train"; 60% of the lines with '
            "digits carry what real documents have: separators and end marks, pen joins and "
            "strikes, continental 1s and crossed 7s, tight cells and rules, scanner borders, "
            "security backgrounds, grey paper, phone photos, printed text)"
        )
    else:
        source = '``digitrec.synth.pages.line_samples`` (style "train")'
    digits = "MNIST's first 55,000 training images"
    if settings.get("real") == "cvl":
        digits += (
            f" and CVL's train part, each image {settings.get('real_repeat')} times, a line of "
            f"CVL digits written by one writer ({CVL_SOURCE})"
        )
    init, start = settings.get("init"), ""
    if init:
        model = (
            f"the shipped line model ``{SHIPPED_LINE_MODELS[init]}`` (``--init {init}``, as "
            "``tools/lines_keras.py`` rebuilds it)"
            if init in SHIPPED_KERAS
            else f"the line model of ``{init}``"
        )
        start = (
            f"It started from {model} with batch normalization frozen, and keeps that model's "
            "line filter. "
        )
    return f"{start}Training lines: {source} made from {digits}"


def validation_words(settings: dict[str, Any]) -> str:
    """The card's words for the digits of the validation lines that chose the epoch."""
    split = "the validation split (the last 5,000 training images)"
    if settings.get("real") == "cvl":
        return f"{split} and CVL's valid part (60 writers not in its train part)"
    return split


def _lines_read(meta: dict[str, Any]) -> list[tuple[str, str]]:
    """The card's rows of validation lines read exactly: on the lines that chose the epoch, and
    on fresh ones where the export measured them."""
    rows = [("validation lines read exactly (those that chose the epoch)", "val")]
    if "fresh_val_exact" in meta:
        rows.append(
            ("fresh validation lines read exactly (not those that chose the epoch)", "fresh_val")
        )
    return [(name, f"{meta[f'{key}_exact']:.2%} of {meta[f'{key}_lines']}") for name, key in rows]


def reproduce(recipe: dict[str, Any] | None) -> str:
    """The card's "Reproduce": the command that makes the model, where it was made by one."""
    if recipe is None:
        return (
            "Exported from a line training run by ``export_line_model``, not made by "
            "``digitrec train-lines``: its settings are above."
        )
    command = " ".join(
        ["digitrec train-lines --out runs/lines", *recipe_flags(LineRecipe.from_dict(recipe))]
    )
    return REPRODUCE.format(command=command)


REPRODUCE = """```sh
{command}
```

It trains the line model, then its filter, exports ``runs/lines/lines.onnx`` checked against
Keras, fits its rejection on validation pages and writes this card as
``runs/lines/lines.card.md``; ``digitrec train-lines --resume runs/lines`` continues it after a
stop. ``digitrec predict --lines runs/lines`` reads with it; the shipped model is those two
files copied to ``src/digitrec/assets/``."""


CARD_TAIL = """
## Data

{lines}, fresh every epoch; {empty} of them hold no digit (printed words,
stamps, scribbles, specks, rule fragments, page edges). The best epoch was chosen on
{val_lines:,} lines made from {val_digits}. The temperature and
thresholds were chosen on generated validation pages of every layout
(``digitrec.training.page_rejection``), from the validation split only. Test figures, if listed, come
from test-style pages (other fonts, rule colours, pens, shadows, blur) made from MNIST's test
images, measured once after everything was chosen.

The line filter (the second output, if the model has one: ``digitrec.training.line_filter``)
learned from the line finder's crops of generated pages of every layout (training split, style
"train"; where no crop of a page holds digits, the region of the ink the single-digit reader
takes for digits), each labelled by the true line it covers, and from that region on generated
drawing-pad images; its epoch was chosen by the loss on the same kinds of crops made from the
validation split.

## Reproduce

{reproduce}
"""


FINE_TUNING_TAIL = """
## Data

Fine-tuned from the starting model above on your strings (their ``labels.csv`` and images),
each read as the line reader reads a crop; a seeded share of them, the same share of every number
length, was held out and chose the epoch (so its figure above is biased up: measure on strings
that played no part, ``digitrec evaluate RUN --strings DIR``). Every batch held {own} of your
training strings (mildly distorted, ``--augment``) and {lines} lines generated as the starting
model learned its own (style "train", fresh every epoch) from {generated}, so that the model
keeps reading generated lines; the "validation lines" figures above are those lines made from the
validation digits. Batch
normalization was frozen (inference mode). The line filter is the starting model's, unchanged.
The temperature and thresholds were fitted anew on generated validation pages of every layout
(``digitrec.training.page_rejection``), none of your strings among them.

## Reproduce

{reproduce}

``digitrec train-lines --resume runs/strings`` continues it after a stop;
``digitrec predict --model runs/strings IMAGE`` reads with it (the shipped classifier alongside).
"""
