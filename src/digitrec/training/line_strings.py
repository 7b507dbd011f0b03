"""Fine-tuning the page reader's line model on your own written numbers (``digitrec
train-lines --init SOURCE --strings DIR``), into a run directory that ends as a train-lines run
does: ``lines.onnx`` checked against Keras, its rejection fitted, its model card.

Your strings (``read.image_folders.string_labels``: images and a ``labels.csv``) are read as
the line reader reads a crop (``line_reader.prepare_line``); unreadable files are listed and
skipped. A seeded share of them, the same share of every number length, is held out; the others
make a quarter of every batch, whose other three quarters (``StringsRecipe.generated_share``)
are lines generated as the starting model learned them (``synth.pages.line_samples``, or
``synth.documents.document_lines`` for a model trained on documents' lines; fresh every
epoch) from MNIST's training split, and from CVL's train part where the starting model learned
it and the set is found, so that it keeps what it knew. The
model starts from a shipped line model (``SHIPPED_KERAS``, by default the one that reads crops
of one number; their batch normalizations are folded into their convolutions) or a complete
train-lines run, with every batch normalization
frozen (inference mode), at a sixth of training's learning rate, your strings mildly
distorted (``line_batches.distorted``); the epoch kept is the one whose model reads the most
held-out strings exactly, the starting model itself if none does better.
The starting model's line filter is kept as it is. The rejection is fitted anew on generated
validation pages, as for the shipped model: your strings hold no page to fit it on.

Each step leaves its result in the run directory and is skipped when it is there, so a stopped
run resumes (the training from its last epoch); a resume whose ``labels.csv`` changed is refused.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from itertools import islice
from pathlib import Path
from typing import Any

import keras
import numpy as np

from digitrec.data import Dataset, load_dataset
from digitrec.errors import DataError, DigitrecError, ImageError
from digitrec.files import atomic_path, read_json, remove_stale_temporaries, write_json
from digitrec.read.image_folders import STRING_LABELS, SkippedFile, string_labels
from digitrec.read.imaging import load_image
from digitrec.read.line_reader import LineReader, PreparedLine, prepare_line
from digitrec.read.loader import LINE_MODEL
from digitrec.training.callbacks import progress_shown
from digitrec.training.config import TrainConfig
from digitrec.training.line_batches import (
    LineSource,
    batch_arrays,
    distorted,
    epoch_seed,
    min_frames,
    prepared,
)
from digitrec.training.line_export import card_figures, export_line_model, write_line_card
from digitrec.training.line_filter import FILTER_MODEL, FILTER_RECORD
from digitrec.training.line_model import LineCTCLoss
from digitrec.training.line_settings import (
    CARD_FILE,
    SHIPPED_FILTERS,
    SHIPPED_KERAS,
    LineTrainSettings,
    StringsRecipe,
    init_model_file,
    init_settings,
    labels_digest,
    shipped_keras_path,
)
from digitrec.training.line_training import (
    LineCheckpoint,
    LineDigits,
    batch_dataset,
    exact_accuracy,
    finish_run,
    fixed_batches,
    starting_model,
    training_digits,
)
from digitrec.training.model_setup import learning_rate
from digitrec.training.page_rejection import store_rejection
from digitrec.training.rundir import CHECKPOINT_DIR, STATE_FILE
from digitrec.training.train import run_record

WARMUP = 0.1  # of the steps: the one-cycle schedule's warm-up
FIRST_CHECKPOINT = f"{CHECKPOINT_DIR}/best-000.keras"  # the starting model, as read before training

StepPrinter = Callable[[str], None]


@dataclass(frozen=True)
class StringImage:
    """One of your strings: its file, its digits, and the image as the line model takes it."""

    path: Path
    text: str
    line: PreparedLine | None  # None: not read (only split)

    @property
    def image(self) -> Path:
        """What a reader is given for it (``line_export.exact_share``): its file."""
        return self.path


@dataclass
class OwnStrings:
    """Your strings, read and split: ``train`` to learn from, ``val`` to choose the epoch."""

    train: list[StringImage]
    val: list[StringImage]
    skipped: list[SkippedFile]

    def record(self) -> dict[str, Any]:
        """What ``run.json`` and the model card say about them."""
        return {"train": len(self.train), "val": len(self.val), "skipped": len(self.skipped)}


# --- your strings --------------------------------------------------------------------------------


def read_strings(folder: str | Path, stride: int) -> tuple[list[StringImage], list[SkippedFile]]:
    """Every string listed in ``folder``'s ``labels.csv`` as the line reader prepares it; files
    that cannot be read, or too narrow for their digits at the model's ``stride``, skipped."""
    strings, skipped = [], []
    for path, text in string_labels(Path(folder)).items():
        try:
            line = prepare_line(load_image(path), stride=stride)
        except ImageError as error:
            skipped.append(SkippedFile(path, str(error)))
            continue
        if line.image.shape[1] // stride < min_frames(text):
            skipped.append(SkippedFile(path, f"too narrow for its {len(text)} digits"))
            continue
        strings.append(StringImage(path, text, line))
    if len(strings) < 2:
        raise DataError(
            f"{folder}: {len(strings)} readable strings; fine-tuning needs at least 2 (one to "
            "learn from, one to choose the epoch)"
        )
    return strings, skipped


def split_strings(
    strings: list[StringImage], val_share: float, seed: int
) -> tuple[list[StringImage], list[StringImage]]:
    """Hold out ``val_share`` of the strings (at least one), seeded, the same share of every
    number length (a length with a single string counted with the nearest other length); a
    plain seeded draw where there are too few strings for that."""
    held_out = min(max(1, round(val_share * len(strings))), len(strings) - 1)
    strata = length_strata([len(s.text) for s in strings])
    if (
        len(set(strata)) <= min(held_out, len(strings) - held_out)
        and min(strata.count(n) for n in strata) >= 2
    ):
        from sklearn.model_selection import train_test_split

        _, val = train_test_split(
            np.arange(len(strings)), test_size=held_out, stratify=strata, random_state=seed
        )
    else:
        val = np.random.default_rng(seed).permutation(len(strings))[:held_out]
    chosen = {int(k) for k in val}
    return (
        [s for k, s in enumerate(strings) if k not in chosen],
        [s for k, s in enumerate(strings) if k in chosen],
    )


def length_strata(lengths: list[int]) -> list[int]:
    """Each string's stratum: its length, or for a length that only one string has, the
    nearest length that more have (itself where none has)."""
    counts = {n: lengths.count(n) for n in set(lengths)}
    common = [n for n, count in counts.items() if count >= 2]
    if not common:
        return lengths
    return [n if counts[n] >= 2 else min(common, key=lambda c: (abs(c - n), c)) for n in lengths]


def load_strings(recipe: StringsRecipe, stride: int) -> OwnStrings:
    """Your strings, read and split as the recipe says; a ``DigitrecError`` where the folder's
    ``labels.csv`` is no longer the one the run started with."""
    if labels_digest(recipe.strings) != recipe.labels_digest:
        raise DigitrecError(
            f"{Path(recipe.strings) / STRING_LABELS} changed since this run started; a run "
            "continues on the strings it started with: put them back, or start a new run"
        )
    strings, skipped = read_strings(recipe.strings, stride)
    train, val = split_strings(strings, recipe.val_share, recipe.seed)
    return OwnStrings(train, val, skipped)


# --- the starting model -------------------------------------------------------------------------


def init_files(init: str) -> tuple[Path, Path | None, Path | None]:
    """The starting model's Keras file (``init_model_file``), its line filter's and the
    filter's record (None where it has none; the shipped one's record is in its ONNX file)."""
    lines = init_model_file(init)
    if init in SHIPPED_KERAS:
        return lines, shipped_keras_path(SHIPPED_FILTERS[init]), None
    run = Path(init)
    if (run / FILTER_MODEL).is_file() and (run / FILTER_RECORD).is_file():
        return lines, run / FILTER_MODEL, run / FILTER_RECORD
    return lines, None, None


def compile_for_strings(model: keras.Model, recipe: StringsRecipe, steps: int) -> None:
    """Adam on the CTC loss, one-cycle at the recipe's learning rate."""
    schedule = TrainConfig(
        epochs=recipe.epochs,
        learning_rate=recipe.learning_rate,
        schedule="onecycle",
        warmup=WARMUP,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate(schedule, steps)), loss=LineCTCLoss()
    )


# --- batches -------------------------------------------------------------------------------------


def mixed_batches(
    own: list[tuple[PreparedLine, str]],
    source: LineSource,
    images: np.ndarray,
    labels: np.ndarray,
    seed: int,
    epochs: range,
    own_per_batch: int,
    batch_size: int,
    stride: int,
    augment: float = 0.0,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every epoch: your training strings in a new order, ``own_per_batch`` a batch, distorted
    as strong as ``augment`` (``line_batches.distorted``; 0: as they are), each batch completed
    with new generated lines (style "train"); the same batches on a rerun."""
    generated = batch_size - own_per_batch
    steps = steps_per_epoch(len(own), own_per_batch)
    for epoch in epochs:
        lines_seed = epoch_seed(seed, epoch)
        rng = np.random.default_rng(lines_seed)
        order = rng.permutation(len(own))
        samples = source(images, labels, (steps + 1) * generated, lines_seed, style="train")
        lines = prepared(samples, stride)
        for step in range(steps):
            group = [own[k] for k in order[step * own_per_batch : (step + 1) * own_per_batch]]
            if augment:
                group = [(distorted_line(line, rng, augment, stride), t) for line, t in group]
            yield batch_arrays(group + list(islice(lines, generated)), stride)


def distorted_line(line: PreparedLine, rng: np.random.Generator, strength: float, stride: int):
    """``line`` written a little differently (``line_batches.distorted``)."""
    return replace(line, image=distorted(line.image, rng, strength, stride))


def steps_per_epoch(own: int, own_per_batch: int) -> int:
    return math.ceil(own / own_per_batch)


def as_lines(strings: list[StringImage]) -> list[tuple[PreparedLine, str]]:
    return [(s.line, s.text) for s in strings]


# --- the run -------------------------------------------------------------------------------------


def fine_tune_steps(
    recipe: StringsRecipe,
    run_dir: Path,
    data_dir: str | Path | None,
    progress: StepPrinter | None,
    background: bool,
    run_files: tuple[str, ...],
) -> Path:
    """Every step of a fine-tuning run whose result the run directory does not hold yet."""
    say = progress or (lambda message: None)
    for name in run_files:
        remove_stale_temporaries(run_dir / name)
    settings = replace(init_settings(recipe.init), val_lines=recipe.val_lines)
    own = load_strings(recipe, settings.stride)
    say(
        f"your strings: {len(own.train)} to learn from, {len(own.val)} held out"
        + (f", {len(own.skipped)} skipped" if own.skipped else "")
    )
    for skip in own.skipped[:20]:
        say(f"  skipped {skip}")
    if not (run_dir / "metrics.json").is_file():
        fine_tune(recipe, settings, own, run_dir, data_dir, progress is not None, background)
    model = run_dir / LINE_MODEL
    if not model.is_file():
        say(f"export: {model}, checked against Keras")
        export_line_model(
            run_dir,
            model,
            data_dir,
            fine_tuning=fine_tuning_record(recipe, own, run_dir),
            strings=own.val,
        )
    if "rejection_figures" not in LineReader.load(model).metadata:
        say(f"rejection: fitted on {recipe.rejection_pages} validation pages of every layout")
        store_rejection(model, recipe.rejection_pages, data_dir)
    card = run_dir / CARD_FILE
    if not card.is_file():
        say("model card")
        write_line_card(model, card, card_figures(model, recipe.card_pages, data_dir))
    return model


def fine_tuning_record(recipe: StringsRecipe, own: OwnStrings, run_dir: Path) -> dict[str, Any]:
    """What the exported model's metadata and card say of the fine-tuning."""
    metrics = read_json(run_dir / "metrics.json")
    return {
        "recipe": asdict(recipe),
        "strings": own.record(),
        "best_epoch": metrics["best_epoch"],
        "start_val_exact": read_json(run_dir / STATE_FILE)["start_exact"],
        # a run started before runs recorded it wrote its lines of MNIST alone
        "generated": read_json(run_dir / "run.json").get("generated", "MNIST's training split"),
    }


def fine_tune(
    recipe: StringsRecipe,
    settings: LineTrainSettings,
    own: OwnStrings,
    run_dir: Path,
    data_dir: str | Path | None,
    verbose: bool,
    background: bool,
) -> None:
    """Train from the starting model into ``run_dir`` (or resume there), keeping the epoch that
    reads the most held-out strings exactly; ``model.keras`` and ``metrics.json`` at the end."""
    lines, filter_model, filter_record = init_files(recipe.init)
    data = load_dataset(settings.dataset, data_dir, progress=verbose)
    generated = generated_digits(settings, data, verbose)
    if not (run_dir / "run.json").is_file():
        record = run_record(TrainConfig(), data)
        del record["config"]
        record["generated"] = generated_words(settings, generated)
        write_json(
            run_dir / "run.json",
            {"settings": asdict(settings), "init": recipe.init, "strings": own.record(), **record},
        )
    copy_filter(run_dir, filter_model, filter_record)
    keras.utils.set_random_seed(recipe.seed)
    validation = fixed_batches(as_lines(own.val), settings.stride)
    steps = steps_per_epoch(len(own.train), recipe.own_per_batch)
    state = read_json(run_dir / STATE_FILE) if (run_dir / STATE_FILE).is_file() else None
    if state is None:
        model = starting_model(lines)
        compile_for_strings(model, recipe, steps)
        state = start_state(run_dir, model, validation, verbose)
    elif state["checkpoint"]:
        model = keras.saving.load_model(run_dir / state["checkpoint"])
    else:
        model = starting_model(lines)
        compile_for_strings(model, recipe, steps)
    if state["epoch"] < recipe.epochs:
        source = generated.source(settings)
        args = (as_lines(own.train), source, generated.images, generated.labels, recipe.seed)
        args += (range(state["epoch"], recipe.epochs), recipe.own_per_batch, recipe.batch_size)
        args += (settings.stride, recipe.augment)
        callbacks = [*progress_shown(verbose), LineCheckpoint(run_dir, state, validation, verbose)]
        model.fit(
            batch_dataset(mixed_batches, args, background),
            epochs=recipe.epochs,
            initial_epoch=state["epoch"],
            steps_per_epoch=steps,
            callbacks=callbacks,
            shuffle=False,
            verbose=0,
        )
    finish_run(run_dir, state)


def generated_digits(settings: LineTrainSettings, data: Dataset, verbose: bool) -> LineDigits:
    """The digits of the generated lines, as the starting model learned its lines: with its real
    set (CVL's train part) where that is found, else the dataset's training split alone, since
    a real set is not needed to fine-tune."""
    try:
        return training_digits(settings, data)
    except DataError as exc:
        if settings.real == "none":
            raise
        if verbose:
            print(f"generated lines of {settings.dataset} alone: {exc}")
        return training_digits(replace(settings, real="none"), data)


def generated_words(settings: LineTrainSettings, generated: LineDigits) -> str:
    """What the generated lines were written with, in the model card's words."""
    words = f"{settings.dataset.upper()}'s training split"
    return words + (" and CVL's train part" if (generated.writers >= 0).any() else "")


def start_state(
    run_dir: Path,
    model: keras.Model,
    validation: list[tuple[np.ndarray, list[int], list[str]]],
    verbose: bool,
) -> dict[str, Any]:
    """The state of a new run: the starting model, as it reads the held-out strings, is the
    best so far (epoch 0), so that fine-tuning keeps it where no epoch reads more."""
    posteriors = [np.asarray(model(x, training=False)) for x, _, _ in validation]
    exact = exact_accuracy(posteriors, validation)
    if verbose:
        print(f"before fine-tuning: {exact:.2%} of your held-out strings read exactly")
    with atomic_path(run_dir / FIRST_CHECKPOINT, suffix=".keras") as tmp:
        model.save(tmp)
    state = {
        "epoch": 0,
        "checkpoint": None,
        "history": {},
        "best_checkpoint": FIRST_CHECKPOINT,
        "best_epoch": 0,
        "best_exact": exact,
        "start_exact": exact,
    }
    write_json(run_dir / STATE_FILE, state)
    return state


def copy_filter(run_dir: Path, model: Path | None, record: Path | None) -> None:
    """The starting model's line filter, kept as it is, and its record (for the shipped one,
    the record its ``lines.onnx`` holds)."""
    if model is None or (run_dir / FILTER_RECORD).is_file():
        return
    with atomic_path(run_dir / FILTER_MODEL, suffix=".keras") as tmp:
        shutil.copyfile(model, tmp)
    found = read_json(record) if record else LineReader.load("default").metadata["line_filter"]
    write_json(run_dir / FILTER_RECORD, found)
