"""The page reader of any classifier (``Recognizer.load(model, lines=...)``, ``predict --lines``,
``read_files(lines=...)``): the shipped line model unless told otherwise, a run directory's own,
an exported one, or none; and what read an image, named by ``describe`` and in ``predict --json``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from digitrec.batch.jobs import read_files
from digitrec.batch.on_ray import _absolute
from digitrec.cli import main
from digitrec.errors import ModelError
from digitrec.read.loader import DEFAULT_MODEL, LINE_MODEL, SHIPPED_LINE_MODELS
from digitrec.read.recognizer import Recognizer

ASSETS = resources.files("digitrec") / "assets"
PAGE = Path(__file__).resolve().parent.parent / "examples" / "page.png"
PAGE_TEXT = "1562\n53992"  # what the README's quick start shows for it
SHIPPED_LINES = (
    f"default line model ({LINE_MODEL}); crops of one number: documents line model "
    f"({SHIPPED_LINE_MODELS['documents']})"
)


def recording(reader, name: str, read_by: list[str]):
    """``reader.read_lines`` that notes ``name`` in ``read_by`` each time it reads."""
    read = reader.read_lines

    def read_lines(crops):
        read_by.append(name)
        return read(crops)

    return read_lines


def copy_of(asset: str, path: Path) -> Path:
    """A shipped model copied to ``path`` (folders made): a model of the user's own."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((ASSETS / asset).read_bytes())
    return path


@pytest.fixture
def classifier(tmp_path: Path) -> Path:
    """Another classifier than the shipped one (a copy of it, as a fine-tuned one would be)."""
    return copy_of(DEFAULT_MODEL, tmp_path / "mine.onnx")


def test_another_classifier_gets_the_shipped_page_reader_and_reads_a_page(classifier):
    recognizer = Recognizer.load(classifier)
    assert recognizer.describe() == {"classifier": str(classifier), "page_reader": SHIPPED_LINES}
    assert recognizer.read(PAGE).text == PAGE_TEXT


def test_a_run_directory_reads_with_its_own_line_model_or_else_the_shipped_one(tmp_path):
    run = tmp_path / "run"
    copy_of(DEFAULT_MODEL, run / "model.onnx")
    assert Recognizer.load(run).describe()["page_reader"] == SHIPPED_LINES
    own = copy_of(LINE_MODEL, run / LINE_MODEL)
    for lines in ("default", "auto"):
        assert Recognizer.load(run, lines=lines).describe() == {
            "classifier": str(run / "model.onnx"),
            "page_reader": str(own),
        }


def test_an_exported_line_model_is_taken_as_a_file_or_a_folder_holding_one(classifier, tmp_path):
    line_run = tmp_path / "line-run"
    exported = copy_of(LINE_MODEL, line_run / "model.onnx")  # where a line run's export puts it
    named = copy_of(LINE_MODEL, tmp_path / "other" / "digits-lines.onnx")
    own = copy_of(LINE_MODEL, tmp_path / "both" / LINE_MODEL)
    copy_of(DEFAULT_MODEL, tmp_path / "both" / "model.onnx")
    for lines, source in [(line_run, exported), (named, named), (own.parent, own)]:
        recognizer = Recognizer.load(classifier, lines=lines)
        assert recognizer.describe()["page_reader"] == str(source)
        assert recognizer.read(PAGE).text == PAGE_TEXT


@pytest.mark.parametrize("lines", [None, "none"])
def test_no_line_model_is_no_page_reader(lines):
    recognizer = Recognizer.load("default", lines=lines)
    assert recognizer.pages is None and recognizer.describe()["page_reader"] is None
    assert recognizer.read(PAGE).text == recognizer.read(PAGE, reader="digits").text != PAGE_TEXT
    with pytest.raises(
        ModelError, match=r"no page reader; load one .* or read with reader 'digits'"
    ):
        recognizer.read(PAGE, reader="pages")


def test_what_is_no_line_model_is_a_clear_model_error(classifier, tmp_path):
    (tmp_path / "empty").mkdir()
    expected = {
        tmp_path / "empty": "a folder with no line model in it (no lines.onnx, nor a line run's",
        classifier: "not a digitrec line model (its metadata lacks alphabet, height, stride); a "
        "page reader needs an exported line model, 'default' (the shipped one) or 'none'",
        tmp_path / "missing.onnx": "cannot read model file",
    }
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.onnx")
        expected[tmp_path / "pipe.onnx"] = "not a regular file (expected a line model's .onnx"
    for lines, message in expected.items():
        with pytest.raises(ModelError, match=re.escape(message)):
            Recognizer.load(classifier, lines=lines)


def test_predict_lines_chooses_the_page_reader_and_json_names_the_models(classifier, capsys):
    assert main(["predict", "--json", "--model", str(classifier), str(PAGE)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["text"] == PAGE_TEXT
    assert result["model"] == {"classifier": str(classifier), "page_reader": SHIPPED_LINES}
    assert main(["predict", "--json", "--lines", "none", str(PAGE)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"]["page_reader"] is None and result["text"] != PAGE_TEXT
    assert main(["predict", "--lines", str(classifier.parent / "nothing.onnx"), str(PAGE)]) == 2
    assert "nothing.onnx: cannot read model file" in capsys.readouterr().err


def test_worker_processes_read_with_the_line_model_they_are_given(tmp_path):
    own = copy_of(LINE_MODEL, tmp_path / "lines" / "mine.onnx")
    images = tmp_path / "images"
    images.mkdir()
    for name in ("a.png", "b.png"):
        shutil.copy(PAGE, images / name)
    for lines, source, text in [("none", None, None), (own, str(own), PAGE_TEXT)]:
        results = list(read_files([images], lines=lines, jobs=2))
        assert [r["model"]["page_reader"] for r in results] == [source, source]
        if text:
            assert [r["text"] for r in results] == [text, text]
        else:
            assert all(r["text"] != PAGE_TEXT for r in results)


def test_ray_actors_get_the_line_model_at_an_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _absolute("lines.onnx") == str(tmp_path / "lines.onnx")
    assert [_absolute(name) for name in ("default", "auto", "none", None)] == [
        "default",
        "auto",
        "none",
        None,
    ]


def test_the_shipped_line_model_for_documents_is_chosen_by_its_name(tmp_path, capsys):
    from digitrec.serve.settings import model_file

    recognizer = Recognizer.load(lines="documents")
    documents = f"documents line model ({SHIPPED_LINE_MODELS['documents']})"
    assert recognizer.describe()["page_reader"] == documents
    assert recognizer.pages.reader.metadata["training_settings"]["source"] == "documents"
    assert model_file("documents") == "documents"  # a name for workers, not a path
    assert main(["predict", str(PAGE), "--lines", "documents", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["page_reader"] == documents
    card = (ASSETS / "documents.card.md").read_text()
    assert "CVL" in card and "--source documents --real cvl" in card


def test_the_default_reads_a_crop_of_one_number_with_the_documents_model_and_pages_with_its_own(
    monkeypatch,
):
    """The default page reader reads an image that is a crop of one number (a cheque's amount,
    a form's cell) with the documents line model, and a page with the page model; a line model
    named on its own (``--lines documents``, a run's) reads both."""
    from PIL import Image

    from digitrec.read.line_finder import find_lines
    from digitrec.read.page_reader import PagePredictor, line_crop

    pages = Recognizer.load().pages
    assert pages.crops.reader.metadata["training_settings"]["source"] == "documents"
    assert pages.reader.source == f"default line model ({LINE_MODEL})"
    read_by: list[str] = []
    for name, predictor in (("page", pages), ("crop", pages.crops)):
        monkeypatch.setattr(
            predictor.reader, "read_lines", recording(predictor.reader, name, read_by)
        )
    page = np.asarray(Image.open(PAGE).convert("L"))
    lines = find_lines(page / 255.0)
    assert not line_crop(page / 255.0, lines)
    assert pages.read_lines(page / 255.0) and read_by == ["page"]
    x0, y0, x1, y1 = lines[0].box
    crop = page[max(0, y0 - 8) : y1 + 8, max(0, x0 - 8) : x1 + 8] / 255.0
    read_by.clear()
    (line,) = pages.read_lines(crop)
    assert line.text == PAGE_TEXT.split()[0] and read_by == ["crop"]
    documents = PagePredictor.load("documents")
    assert documents.crops is documents
