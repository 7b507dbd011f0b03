"""Reading pages: synthetic lines and pages of handwritten numbers with their ground truth
(``pages``; ranges in ``style``), and finding the text lines on a page (``detect``)."""

from digitrec.reading.detect import LineBox, find_lines
from digitrec.reading.pages import LAYOUTS, LineSample, PageSample, line_samples, page_sample
from digitrec.reading.sheet import LineTruth

__all__ = [
    "LAYOUTS",
    "LineBox",
    "LineSample",
    "LineTruth",
    "PageSample",
    "find_lines",
    "line_samples",
    "page_sample",
]
