"""How to read an image (``ReadOptions``): one value that the CLI, the service and batch
reading hand to ``Recognizer.read`` whole, checked once when it is made."""

from __future__ import annotations

from dataclasses import dataclass

from digitrec.errors import DigitrecError, ModelError
from digitrec.read.decoding import MAX_PIXELS

READERS = ("auto", "pages", "digits")
# The reader ``read`` uses unless told: on validation pages "auto" reads every page layout far
# better than "digits" and single digits about as well (the README's "Reading users' images").
DEFAULT_READER = "auto"


@dataclass(frozen=True)
class ReadOptions:
    """How to read an image: ``single`` takes all its ink as one digit (the single-digit
    classifier); ``top_k`` likeliest labels are listed per digit; an image of more than
    ``max_pixels`` pixels is refused before it is decoded; ``reader`` is "auto", "pages" or
    "digits" (``READERS``)."""

    single: bool = False
    top_k: int = 3
    max_pixels: int = MAX_PIXELS
    reader: str = DEFAULT_READER

    def __post_init__(self) -> None:
        if self.reader not in READERS:
            raise ModelError(
                f"unknown reader {self.reader!r}: expected one of {', '.join(READERS)}"
            )
        if self.top_k < 1:
            raise DigitrecError(
                f"top_k must be at least 1 (the labels listed per digit), not {self.top_k}"
            )
        if self.max_pixels < 1:
            raise DigitrecError(
                f"max_pixels must be positive (the largest image read, in pixels), not "
                f"{self.max_pixels}"
            )
