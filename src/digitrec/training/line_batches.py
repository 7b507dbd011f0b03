"""The batches the CTC line recognizer trains on (NumPy only, no TensorFlow: a worker process
makes them while the model trains).

Training lines come from a line source (``digitrec.synth.pages.line_samples`` unless told
otherwise) and go through the inference side's own preprocessing (``line_reader.prepare_line``); lines
of similar width are batched together, and every epoch's lines are new, drawn from a seed of its
own (``epoch_seed``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice, pairwise
from typing import Any, Protocol

import cv2
import numpy as np

from digitrec.errors import DigitrecError
from digitrec.read.line_reader import ALPHABET, STRIDE, PreparedLine, pad_batch, prepare_line
from digitrec.synth.style import PageStyle

POOL_BATCHES = 8  # lines are sorted by width within pools of this many batches: less padding


class LineSample(Protocol):
    """What a line source yields: a grey line crop (dark ink on light) and its digits."""

    image: np.ndarray
    text: str


LineSource = Callable[..., Iterable[LineSample]]  # (digits, labels, count, seed, style=...)


# --- batches -------------------------------------------------------------------------------------


def encode_targets(texts: list[str], frames: list[int]) -> np.ndarray:
    """Rows of [label count, frame count, labels..., 0 padding] as float32 (``LineCTCLoss``);
    at least one label column, even when no line has a digit (CTC needs one)."""
    rows = np.zeros((len(texts), 2 + max([1, *map(len, texts)])), np.float32)
    for row, text, count in zip(rows, texts, frames, strict=True):
        row[:2] = len(text), count
        row[2 : 2 + len(text)] = [ALPHABET.index(c) for c in text]
    return rows


def min_frames(text: str) -> int:
    """The fewest frames CTC can align a text to: one per label, one blank between repeats."""
    return len(text) + sum(a == b for a, b in pairwise(text))


def prepared(
    samples: Iterable[LineSample], stride: int = STRIDE
) -> Iterator[tuple[PreparedLine, str]]:
    """Samples preprocessed as the reader does; lines too narrow for their text at the model's
    ``stride`` are skipped (CTC cannot align them). A line without digits (text "") teaches the
    model all blanks."""
    for sample in samples:
        line = prepare_line(sample.image, stride=stride)
        if line.image.shape[1] // stride >= min_frames(sample.text):
            yield line, sample.text


def batches(
    samples: Iterable[LineSample],
    batch_size: int,
    rng: np.random.Generator,
    stride: int = STRIDE,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(inputs, targets) batches; lines of similar width are batched together (sorted within
    a pool of ``POOL_BATCHES`` batches, which are then shuffled) to spend little on padding."""
    lines = prepared(samples, stride)
    while pool := list(islice(lines, batch_size * POOL_BATCHES)):
        pool.sort(key=lambda item: item[0].image.shape[1])
        groups = [pool[i : i + batch_size] for i in range(0, len(pool), batch_size)]
        for index in rng.permutation(len(groups)):
            yield batch_arrays(groups[index], stride)


def batch_arrays(
    group: list[tuple[PreparedLine, str]], stride: int = STRIDE
) -> tuple[np.ndarray, np.ndarray]:
    """One batch's padded inputs and packed targets (frame counts at the model's ``stride``)."""
    images = [line.image for line, _ in group]
    frames = [image.shape[1] // stride for image in images]
    return pad_batch(images), encode_targets([text for _, text in group], frames)


def distorted(
    image: np.ndarray, rng: np.random.Generator, strength: float, stride: int
) -> np.ndarray:
    """A prepared line (height, width) written a little differently: stretched or squeezed
    along the line (up to 15% at ``strength`` 1), slanted (a shear of up to 0.2), scaled in
    height (10%) and shifted up or down (2 pixels); its width kept a multiple of ``stride``."""
    height, width = image.shape
    along = rng.uniform(1 - 0.15 * strength, 1 + 0.15 * strength)
    across = rng.uniform(1 - 0.1 * strength, 1 + 0.1 * strength)
    shear = rng.uniform(-0.2 * strength, 0.2 * strength)
    shift = rng.uniform(-2 * strength, 2 * strength)
    middle = height / 2
    matrix = np.float32(
        [
            [along, shear, (abs(shear) - shear) * middle],
            [0, across, middle * (1 - across) + shift],
        ]
    )
    columns = -(-round(width * along + abs(shear) * height) // stride) * stride
    return cv2.warpAffine(image, matrix, (columns, height), flags=cv2.INTER_LINEAR, borderValue=0)


# --- an epoch's batches --------------------------------------------------------------------------


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's training lines: a new set every epoch, the same on a rerun."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def training_batches(
    source: LineSource,
    images: np.ndarray,
    labels: np.ndarray,
    seed: int,
    epochs: Iterable[int],
    steps: int,
    batch_size: int,
    style: str | PageStyle = "train",
    stride: int = STRIDE,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``steps`` batches of training lines for each of ``epochs`` in ``style``, each epoch's
    lines drawn from a seed of its own (``epoch_seed``). The source is asked for a batch more
    than an epoch needs, as lines too narrow for their text are skipped (a lazy source such as
    ``line_samples`` makes only the lines taken)."""
    for epoch in epochs:
        lines_seed = epoch_seed(seed, epoch)
        samples = source(images, labels, (steps + 1) * batch_size, lines_seed, style=style)
        rng = np.random.default_rng(lines_seed)
        yield from take(batches(samples, batch_size, rng, stride), steps)


def take(items: Iterator[Any], count: int) -> Iterator[Any]:
    """The first ``count`` items; fewer is an error (the source made too few usable lines)."""
    made = 0
    for item in islice(items, count):
        made += 1
        yield item
    if made < count:
        raise DigitrecError(f"the line source gave {made} batches of the {count} an epoch needs")
