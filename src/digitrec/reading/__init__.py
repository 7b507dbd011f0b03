"""Reading pages: synthetic lines and pages of handwritten numbers with their ground truth
(``pages``), and finding the text lines on a page (``detect``)."""

from digitrec.reading.pages import LAYOUTS, LineSample, PageSample, line_samples, page_sample
from digitrec.reading.sheet import LineTruth

__all__ = ["LAYOUTS", "LineSample", "LineTruth", "PageSample", "line_samples", "page_sample"]
