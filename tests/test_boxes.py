"""Boxes (x0, y0, x1, y1; exclusive ends): the box around several and how much two share, one
definition that line finding, digit finding, the recognizer and the page generator all use."""

from __future__ import annotations

import pytest

from digitrec.read import boxes, line_finder
from digitrec.read.boxes import area, box_around, iou, overlap
from digitrec.synth import layouts, sheet, writing


def test_the_box_around_boxes_holds_them_all_and_no_more():
    assert box_around([(5, 6, 9, 10)]) == (5, 6, 9, 10)
    assert box_around([(5, 6, 9, 10), (1, 8, 4, 20), (7, 2, 12, 3)]) == (1, 2, 12, 20)
    assert box_around(box for box in [(3, 3, 4, 4), (0, 5, 1, 6)]) == (0, 3, 4, 6)


def test_the_box_around_no_boxes_is_an_error():
    with pytest.raises(ValueError):
        box_around([])


def test_area_overlap_and_iou():
    a, b = (0, 0, 10, 10), (5, 5, 15, 25)
    assert area(a) == 100 and area((4, 4, 2, 9)) == 0
    assert overlap(a, b) == 25 and overlap(a, (10, 0, 20, 10)) == 0
    assert iou(a, b) == pytest.approx(25 / (100 + 200 - 25))
    assert iou(a, a) == 1.0 and iou(a, (20, 20, 30, 30)) == 0.0


def test_one_box_alias_and_one_union_serve_reading_and_the_page_generator():
    assert line_finder.Box is writing.Box is sheet.Box is boxes.Box
    assert sheet.box_around is layouts.box_around is line_finder.box_around is box_around
