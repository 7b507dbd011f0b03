"""Reading digits from images with exported ONNX models on ONNX Runtime (no TensorFlow).

A ``Recognizer`` composes three parts and does nothing else:

- the single-digit classifier (``digitrec.read.classifier.Classifier``): digits found as pieces
  of ink, normalized as MNIST was built, classified in one batch and calibrated;
- the page reader (``digitrec.read.page_reader.PagePredictor``): text lines found on the page,
  each read by the CTC line model; lines that hold no writing are left out;
- the policy of the "auto" reader (``digitrec.read.policy``): an ordered table of rules that
  picks, image by image, the page reader's reading or the classifier's.

``Recognizer.load(model, lines=...)`` opens a classifier with a page reader (the shipped line
model unless told otherwise, whatever the classifier); ``read(image, reader=...)`` takes "auto"
(``DEFAULT_READER``), "pages" or "digits". In a line's text, neighbouring digits further apart
than the line is high are two numbers: a space between them (``line_text``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from digitrec.errors import DigitrecError, ModelError
from digitrec.read.boxes import box_around
from digitrec.read.classifier import Classifier
from digitrec.read.imaging import MAX_PIXELS, find_digits
from digitrec.read.loader import LINE_MODEL, RUN_MODEL
from digitrec.read.options import DEFAULT_READER, ReadOptions
from digitrec.read.options import READERS as READERS  # where the doors have always found it
from digitrec.read.policy import DIGITS, PAGES, RULES, Case, NeedsReading, Rule, first_rule
from digitrec.read.results import Reading

if TYPE_CHECKING:
    from digitrec.read.page_reader import PagePredictor

DEFAULT_LINES = "default"  # the page reader ``Recognizer.load`` attaches unless told
DEFAULT_LINES_NAMES = (DEFAULT_LINES, "auto")  # "auto": its former name, still taken
NO_LINES = "none"  # ``lines`` for no page reader (None too)


class Recognizer:
    """A single-digit classifier, a page reader (or None) and the "auto" reader's rules."""

    def __init__(
        self,
        classifier: Classifier,
        pages: PagePredictor | None = None,
        rules: tuple[Rule, ...] = RULES,
    ):
        self.classifier = classifier
        self.pages = pages
        self.rules = rules

    @classmethod
    def load(
        cls,
        model: str | Path = "default",
        threads: int | None = None,
        lines: str | Path | None = DEFAULT_LINES,
    ) -> Recognizer:
        """Open an exported ONNX classifier (a file, or a run directory holding ``model.onnx``),
        or ``"default"`` for the one shipped in the package, with a page reader. A Keras model or
        a run not yet exported is a ``ModelError`` that says how to export it.

        ``lines`` is the page reader's line model, for any classifier: ``"default"`` (or
        ``"auto"``, its former name) is the run directory's own ``lines.onnx`` where ``model``
        is a run directory that holds one, else the shipped line model; a path is an exported
        line model (a file, or a folder holding ``lines.onnx`` or a line run's ``model.onnx``);
        None or ``"none"`` is no page reader. ``threads`` sets ONNX Runtime's intra-op thread
        count (default: its own choice).

        A folder holding a line model but no classifier (a ``digitrec train-lines`` run, one
        fine-tuned on your strings among them) is read by the shipped classifier with that
        folder's line model as the page reader (unless ``lines`` names another).
        """
        model, lines = _line_run(model, lines)
        return cls(Classifier.load(model, threads), _page_reader(model, lines, threads))

    def describe(self) -> dict[str, str | None]:
        """What reads: the classifier's source and the page reader's line model's (None
        without a page reader)."""
        return {
            "classifier": self.classifier.source,
            "page_reader": self.pages.source if self.pages is not None else None,
        }

    # The classifier's, where the service's model card and evaluation look for them.
    @property
    def metadata(self) -> dict[str, Any]:
        return self.classifier.metadata

    @property
    def source(self) -> str:
        return self.classifier.source

    @property
    def classes(self) -> list[str]:
        return self.classifier.classes

    @property
    def threshold(self) -> float:
        return self.classifier.threshold

    @property
    def temperature(self) -> float:
        return self.classifier.temperature

    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        """The classifier's calibrated class probabilities (see ``Classifier.predict_proba``)."""
        return self.classifier.predict_proba(batch)

    def read(
        self,
        image: Any,
        single: bool = False,
        top_k: int = 3,
        max_pixels: int = MAX_PIXELS,
        reader: str = DEFAULT_READER,
        *,
        options: ReadOptions | None = None,
    ) -> Reading:
        """Read the digits in one image (a path, bytes, PIL image or array), line by line, left
        to right; an image of more than ``max_pixels`` pixels is refused before it is decoded.
        ``single`` takes all the ink as one digit (the single-digit classifier); ``reader``
        is "pages", "digits" or "auto" (the rules of ``digitrec.read.policy``; default
        ``DEFAULT_READER``). ``options`` carries these four settings as one ``ReadOptions``,
        instead of one by one."""
        return self.read_many([image], single, top_k, max_pixels, reader, options=options)[0]

    def read_many(
        self,
        images: Sequence[Any],
        single: bool = False,
        top_k: int = 3,
        max_pixels: int = MAX_PIXELS,
        reader: str = DEFAULT_READER,
        *,
        options: ReadOptions | None = None,
    ) -> list[Reading]:
        """Read several images (see ``read``); the single-digit classifier classifies all
        their digits in one batch.

        A bad image raises ``ImageError``; read images one at a time to carry on past it.
        """
        options = _options(single, top_k, max_pixels, reader, options)
        if options.reader == PAGES and self.pages is None:
            raise ModelError(
                f"{self.classifier.source}: no line model is loaded, so no page reader; load one "
                f"(lines {DEFAULT_LINES!r}, --lines {DEFAULT_LINES}) or read with reader 'digits'"
            )
        if options.single or self.pages is None or options.reader == DIGITS:
            return self.classifier.read_images(
                images, options.single, options.top_k, options.max_pixels
            )
        decoded = [self.pages.decode(image, options.max_pixels) for image in images]
        if options.reader == PAGES:
            return [Reading.of_lines(self.pages.read_lines(*d, options.top_k)) for d in decoded]
        return self._read_auto(decoded, options.top_k)

    def _read_auto(self, decoded: list[tuple[np.ndarray, float]], top_k: int) -> list[Reading]:
        """Each decoded image's reading that the first rule applying to it gives. The readings
        a rule asks for are made as it asks: the classifier's for all the images that need it
        in one batch, the page reader's image by image."""
        cases = [
            Case(*_size(gray, factor), _Judge(self.pages, gray, factor)) for gray, factor in decoded
        ]
        chosen: dict[int, Rule] = {}
        while len(chosen) < len(cases):
            needs: dict[str, list[int]] = {DIGITS: [], PAGES: []}
            for k, case in enumerate(cases):
                if k not in chosen:
                    try:
                        rule = first_rule(case, self.rules)
                    except NeedsReading as missing:
                        needs[missing.reader].append(k)
                        continue
                    if rule.gives in case.readings:
                        chosen[k] = rule
                    else:  # a rule that looked at the size alone gives a reading not yet made
                        needs[rule.gives].append(k)
            for k, digits in zip(
                needs[DIGITS], self._classify(decoded, needs[DIGITS], top_k), strict=True
            ):
                cases[k].readings[DIGITS] = digits
            for k in needs[PAGES]:
                cases[k].readings[PAGES] = Reading.of_lines(
                    self.pages.read_lines(*decoded[k], top_k)
                )
        return [case.readings[chosen[k].gives] for k, case in enumerate(cases)]

    def _classify(
        self, decoded: list[tuple[np.ndarray, float]], indices: list[int], top_k: int
    ) -> list[Reading]:
        """The classifier's readings of the decoded images at ``indices``, in one batch."""
        crops = [find_digits(decoded[k][0], size=_size(*decoded[k])) for k in indices]
        return self.classifier.read_crops(crops, top_k)


class _Judge:
    """Whether the line filter takes the ink of the classifier's digits on a decoded image
    (``gray``, ``factor`` times smaller than the image) for writing: the classifier reads
    scribbles as digits too."""

    def __init__(self, pages: PagePredictor, gray: np.ndarray, factor: float):
        self.pages, self.gray, self.factor = pages, gray, factor

    def __call__(self, digits: Reading) -> bool:
        x0, y0, x1, y1 = box_around(d.box for d in digits.digits)
        box = (
            int(x0 / self.factor),
            int(y0 / self.factor),
            int(np.ceil(x1 / self.factor)),
            int(np.ceil(y1 / self.factor)),
        )
        return self.pages.passes_filter(self.gray, box)


def _options(
    single: bool, top_k: int, max_pixels: int, reader: str, options: ReadOptions | None
) -> ReadOptions:
    """The options given: ``options`` whole, or else the four settings made into one; both at
    once is an error, since one would silently win over the other."""
    given = ReadOptions(single, top_k, max_pixels, reader)
    if options is None:
        return given
    if given != ReadOptions():
        raise DigitrecError(
            "reading options given twice: pass options=ReadOptions(...) or single, top_k, "
            "max_pixels and reader one by one, not both"
        )
    return options


def _size(gray: np.ndarray, factor: float) -> tuple[int, int]:
    """The (rows, cols) of the image that ``gray`` was decoded from, ``factor`` times larger."""
    return round(gray.shape[0] * factor), round(gray.shape[1] * factor)


def _page_reader(
    model: str | Path, lines: str | Path | None, threads: int | None
) -> PagePredictor | None:
    """The ``PagePredictor`` that ``lines`` names for the classifier ``model`` (see
    ``Recognizer.load``), or None."""
    if lines is None or str(lines) == NO_LINES:
        return None
    from digitrec.read.page_reader import PagePredictor  # SciPy with it: 0.2 s, only if needed

    if str(lines) in DEFAULT_LINES_NAMES:
        own = Path(model) / LINE_MODEL
        lines = own if str(model) != "default" and own.is_file() else DEFAULT_LINES
    return PagePredictor.load(lines, threads)


def _line_run(model: str | Path, lines: str | Path | None) -> tuple[str | Path, str | Path | None]:
    """For a folder with a ``lines.onnx`` and no classifier's ``model.onnx`` (a train-lines
    run): the shipped classifier, and that line model where ``lines`` is the default."""
    folder = Path(model)
    if str(model) == "default" or not (folder / LINE_MODEL).is_file():
        return model, lines
    if (folder / RUN_MODEL).is_file():
        return model, lines
    own = folder / LINE_MODEL if lines is not None and str(lines) in DEFAULT_LINES_NAMES else lines
    return "default", own
