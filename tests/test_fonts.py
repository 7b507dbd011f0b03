"""The fonts of generated pages' printed text: matplotlib's own, so that pages look the same on
every machine with the [train] extra, without fonts from the system."""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib
import pytest
from fontTools.ttLib import TTFont

from digitrec.errors import DigitrecError
from digitrec.synth.printing import LETTERS, font_files
from digitrec.synth.style import TEST, TRAIN


@pytest.fixture
def fresh_font_list():
    """``font_files`` looked up again in the test, and again after it."""
    font_files.cache_clear()
    yield
    font_files.cache_clear()


def test_both_styles_take_their_fonts_from_matplotlib_and_share_none():
    matplotlib_fonts = Path(matplotlib.get_data_path()).resolve()
    train, test = font_files(TRAIN.print.fonts), font_files(TEST.print.fonts)
    assert len(train) >= 10 and len(test) >= 4
    assert all(path.resolve().is_relative_to(matplotlib_fonts) for path in train + test)
    assert not {path.name for path in train} & {path.name for path in test}


@pytest.mark.parametrize("style", [TRAIN, TEST], ids=["train", "test"])
def test_every_font_of_a_style_has_every_character_it_is_asked_to_set(style):
    characters = (
        set(LETTERS) | set("".join(style.print.words)) | set("".join(style.print.words).upper())
    )
    for path in font_files(style.print.fonts):
        mapped = TTFont(path, fontNumber=0).getBestCmap()
        missing = sorted(c for c in characters if ord(c) not in mapped)
        assert not missing, f"{path.name} lacks {''.join(missing)}"


def test_without_matplotlib_the_error_names_the_extra_to_install(monkeypatch, fresh_font_list):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if [train] were not installed
    with pytest.raises(
        DigitrecError, match=r"matplotlib is not installed: pip install 'digitrec\[train\]'"
    ):
        font_files(TRAIN.print.fonts)


def test_a_pattern_matching_no_font_is_a_clear_error(fresh_font_list):
    with pytest.raises(DigitrecError, match="no font file matching NoSuchFont"):
        font_files(("NoSuchFont*",))
