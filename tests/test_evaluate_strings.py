"""``digitrec evaluate --strings``: images of written numbers read by the page reader and scored
against the digits their labels.csv gives; a folder laid out wrongly is refused before reading."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from synthetic import font_digit

from digitrec.cli import main
from digitrec.errors import DataError
from digitrec.read.recognizer import Recognizer
from digitrec.synth.pages import line_samples
from digitrec.synth.style import Camera, Hand, PageStyle, Print
from digitrec.training.evaluate import edit_distance, evaluate_strings, string_labels, string_scores

DIGITS = np.stack([font_digit(d) for d in range(10)])
PLAIN = PageStyle(  # typeset digits on clean paper: the shipped readers read most of them
    hand=Hand(digits=(3, 6), size_jitter=0.0, max_rotation=0.0, slant=(0, 0), gaps=((0.3, 0.6),)),
    print=Print(contexts=(1, 0, 0, 0, 0, 0, 0), label_probability=0.0, empty_line_fraction=0.0),
    camera=Camera(
        fade=(0, 0), gradient=(0, 0), shadow_probability=0.0, noise=(0, 0), jpeg_probability=0.0
    ),
)


@pytest.fixture(scope="module")
def strings_folder(tmp_path_factory):
    """Four generated lines of typeset digits, an unreadable file, and their labels.csv (with a
    column of its own and spaces in a text): the folder and the true digits of each image."""
    folder = tmp_path_factory.mktemp("strings")
    truths = {}
    for i, sample in enumerate(line_samples(DIGITS, np.arange(10), 4, seed=3, style=PLAIN)):
        Image.fromarray(sample.image).save(folder / f"line{i}.png")
        truths[f"line{i}.png"] = sample.text.replace(" ", "")
    (folder / "torn.png").write_bytes(b"\x89PNG not really")
    rows = [f"{name},{' '.join(text)},scanned" for name, text in truths.items()]
    (folder / "labels.csv").write_text("file,text,note\n" + "\n".join(rows) + "\ntorn.png,12,\n")
    return folder, truths


def test_scores_count_exact_strings_and_digit_edits_over_all_strings():
    assert edit_distance("1234", "1234") == 0 and edit_distance("", "12") == 2
    assert edit_distance("1234", "124") == 1 and edit_distance("1234", "1243") == 2
    scores = string_scores([("1234", "1234"), ("1234", "1284"), ("56", ""), ("", "")])
    assert scores["strings"] == 4 and scores["exact"] == 2 and scores["exact_accuracy"] == 0.5
    assert scores["digits"] == 10 and scores["digit_errors"] == 3
    assert scores["digit_accuracy"] == pytest.approx(1 - 3 / 10)
    assert string_scores([("1", "12345")])["digit_accuracy"] == 0.0  # not below nothing right
    assert string_scores([])["exact_accuracy"] is None


@pytest.mark.parametrize("lines", ["default", "none"])
def test_each_string_is_read_as_the_recognizer_reads_it_and_scored(strings_folder, lines):
    folder, truths = strings_folder
    result = evaluate_strings("default", folder, lines)
    recognizer = Recognizer.load("default", lines=lines)
    reader = "digits" if lines == "none" else "auto"
    read = {
        name: "".join(c for c in recognizer.read(folder / name, reader=reader).text if c.isdigit())
        for name in truths
    }
    expected = string_scores([(truths[name], read[name]) for name in truths])
    assert {key: result[key] for key in expected} == expected
    assert result["strings"] == 4 and result["digits"] == sum(map(len, truths.values()))
    assert [entry.split(":")[0] for entry in result["skipped"]] == [str(folder / "torn.png")]
    wrong = {m["file"]: (m["text"], m["read"]) for m in result["mistakes"]}
    assert wrong == {str(folder / n): (truths[n], read[n]) for n in truths if truths[n] != read[n]}
    assert (result["reader"]["page_reader"] is None) == (lines == "none")


def test_the_default_reader_reads_typeset_lines(strings_folder, capsys):
    folder, _ = strings_folder
    assert main(["evaluate", "default", "--strings", str(folder), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    # typeset lines on clean paper: all four read exactly at this seed (a line is 25 points)
    assert printed["exact"] == 4 and printed["digit_accuracy"] == 1.0
    assert main(["evaluate", "default", "--strings", str(folder)]) == 0
    text = capsys.readouterr().out
    assert f"({printed['exact']} of 4 strings)" in text
    assert "skipped         1 unreadable file\n" in text and "torn.png" in text


def write_folder(tmp_path, labels: str | None, files=("a.png",)):
    for name in files:
        Image.new("L", (40, 20), 255).save(tmp_path / name)
    if labels is not None:
        (tmp_path / "labels.csv").write_text(labels)
    return tmp_path


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (None, r"labels\.csv: no such file: --strings needs a folder holding the images and a "),
        ("", "lists no image"),
        ("name,digits\na.png,12\n", "no column file or text \\(its columns: name, digits\\)"),
        ("file,text\na.png,12\nb.png,3\nc.png,4\n", "lists files that are not there: .*b.png"),
        ("file,text\na.png,1a\n", "line 2: text '1a' is not digits"),
        ("file,text\na.png,1\na.png,2\n", "line 3: a.png is listed twice"),
        ("file,text\n,1\n", "line 2: no file name"),
    ],
)
def test_a_folder_laid_out_wrongly_is_a_clear_error(tmp_path, labels, message):
    with pytest.raises(DataError, match=message):
        string_labels(write_folder(tmp_path, labels))


def test_labels_keep_the_digits_only_and_ignore_other_columns(tmp_path):
    folder = write_folder(
        tmp_path, "\ufeffnote,file,text\nx,a.png, 12 34\ny,b.png,\n", ("a.png", "b.png")
    )
    assert string_labels(folder) == {folder / "a.png": "1234", folder / "b.png": ""}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--images", "x"], "leave out --images"),
        (["--tta", "--perturb"], "leave out --perturb, --tta"),
        (["--out", "x"], "leave out --out"),
    ],
)
def test_strings_with_options_of_another_evaluation_are_refused(tmp_path, capsys, options, message):
    assert main(["evaluate", "default", "--strings", str(tmp_path), *options]) == 2
    assert message in capsys.readouterr().err


def test_lines_without_strings_is_refused(capsys):
    assert main(["evaluate", "default", "--lines", "none"]) == 2
    assert "only --strings uses" in capsys.readouterr().err
