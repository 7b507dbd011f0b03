"""``digitrec predict``: the table, the JSON lines, --single, folders, per-file errors with the
exit status (malformed and special files too), --save-normalized, --max-pixels, bad models and
run directories, and the progress bar (on a terminal only)."""

from __future__ import annotations

import io
import json
import os
import struct
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synthetic import Style, digit_string_image, font_digit

from digitrec.cli import main, predict
from digitrec.read import decoding
from digitrec.read.recognizer import Recognizer
from digitrec.read.results import rounded


def write_digits(path: Path, digits: list[int], seed: int = 0) -> Path:
    """Typeset digits in a row, written as a user's image file (format from the suffix)."""
    image, _ = digit_string_image(
        [font_digit(d) for d in digits], np.random.default_rng(seed), Style.clean()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def json_lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


@pytest.fixture
def mixed(tmp_path: Path) -> dict[str, Path]:
    """A valid image, an empty file, a truncated PNG and a text file named like an image."""
    good = write_digits(tmp_path / "good.png", [2, 4])
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "text.jpg"
    text.write_text("not an image\n")
    return {"good": good, "truncated": truncated, "empty": empty, "text": text}


def test_json_is_one_object_per_image_with_the_documented_fields(tmp_path, capsys):
    first = write_digits(tmp_path / "a.png", [3, 1, 4])
    second = write_digits(tmp_path / "b.jpg", [7], seed=1)
    assert main(["predict", str(first), str(second), "--json", "--top-k", "2"]) == 0
    lines = json_lines(capsys)
    assert [line["file"] for line in lines] == [str(first), str(second)]
    recognizer = Recognizer.load("default")
    expected = rounded(json.loads(json.dumps(recognizer.read(first, top_k=2).to_dict())))
    model = recognizer.describe()
    assert lines[0] == {"file": str(first), **expected, "error": None, "model": model}
    for line in lines:
        assert list(line) == ["file", "text", "digits", "lines", "error", "model"]
        assert isinstance(line["text"], str) and line["error"] is None
        for digit in line["digits"]:
            assert list(digit) == ["label", "confidence", "box", "top"]
            assert digit["label"] is None or isinstance(digit["label"], int)
            assert isinstance(digit["confidence"], float)
            assert len(digit["box"]) == 4 and all(isinstance(v, int) for v in digit["box"])
            assert len(digit["top"]) == 2 and all(len(pair) == 2 for pair in digit["top"])
    assert len(lines[0]["digits"]) == 3 and len(lines[1]["digits"]) == 1


def test_json_floats_are_rounded_to_six_significant_digits(tmp_path, capsys):
    image = write_digits(tmp_path / "a.png", [3, 1, 4])
    assert main(["predict", str(image), "--json", "--top-k", "10"]) == 0
    (result,) = json_lines(capsys)
    floats = [p for digit in result["digits"] for _, p in digit["top"]]
    assert floats and all(float(f"{p:.6g}") == p for p in floats)
    assert not all(float(f"{p:.5g}") == p for p in floats)  # six digits, not fewer
    assert rounded({"a": [0.123456789, (7, 2.5e-07)], "b": None}) == {
        "a": [0.123457, [7, 2.5e-07]],
        "b": None,
    }


def test_table_lists_each_file_with_its_text_and_confidences(tmp_path, capsys):
    image = write_digits(tmp_path / "number.png", [5, 0])
    assert main(["predict", str(image)]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    text = Recognizer.load("default").read(image).text
    assert line.startswith(str(image)) and f" {text} " in line
    assert line.count("%") == 2


def test_the_table_escapes_control_characters_from_file_names_and_json_keeps_them(tmp_path, capsys):
    image = write_digits(tmp_path / "red\x1b[31m.png", [5])
    missing = tmp_path / "title\x1b]0;x\x07\n.png"
    assert main(["predict", str(image), str(missing)]) == 1
    table = capsys.readouterr().out
    assert not {"\x1b", "\x07"} & set(table) and len(table.splitlines()) == 2
    assert table.startswith(f"{tmp_path}/red\\x1b[31m.png ")
    assert f"{tmp_path}/title\\x1b]0;x\\x07\\n.png  error: " in table
    assert main(["predict", str(image), str(missing), "--json"]) == 1
    assert [line["file"] for line in json_lines(capsys)] == [str(image), str(missing)]


def test_single_reads_each_image_as_one_digit(tmp_path, capsys):
    image = write_digits(tmp_path / "many.png", [1, 2, 3])
    assert main(["predict", str(image), "--single", "--json"]) == 0
    (line,) = json_lines(capsys)
    assert len(line["digits"]) == 1 and len(line["text"]) == 1


def test_folders_are_searched_recursively_for_image_files(tmp_path, capsys):
    write_digits(tmp_path / "top.png", [1])
    write_digits(tmp_path / "deep" / "er" / "inner.bmp", [2])
    (tmp_path / "deep" / "notes.txt").write_text("not read")
    write_digits(tmp_path / ".hidden" / "skip.png", [3])
    assert main(["predict", str(tmp_path), "--json"]) == 0
    files = [line["file"] for line in json_lines(capsys)]
    assert files == [str(tmp_path / "deep" / "er" / "inner.bmp"), str(tmp_path / "top.png")]


def test_unreadable_files_get_their_own_errors_and_the_others_are_read(mixed, capsys):
    paths = [mixed["empty"], mixed["truncated"], mixed["good"], mixed["text"]]
    status = main(
        ["predict", *map(str, paths), str(mixed["good"].with_name("missing.png")), "--json"]
    )
    lines = {Path(line["file"]).name: line for line in json_lines(capsys)}
    assert status == 1
    assert lines["good.png"]["error"] is None and len(lines["good.png"]["digits"]) == 2
    assert "empty" in lines["empty.png"]["error"]
    assert "truncated" in lines["truncated.png"]["error"]
    assert "not an image" in lines["text.jpg"]["error"]
    assert "no such file" in lines["missing.png"]["error"]
    for name in ("empty.png", "truncated.png", "text.jpg", "missing.png"):
        assert lines[name]["text"] == "" and lines[name]["digits"] == []


def test_table_shows_errors_and_counts_failures(mixed, capsys):
    assert main(["predict", str(mixed["good"]), str(mixed["empty"])]) == 1
    captured = capsys.readouterr()
    assert f"{mixed['empty']}  error: " in captured.out
    assert "1 of 2 images could not be read" in captured.err


def test_save_normalized_writes_the_inputs_the_model_saw(tmp_path, capsys):
    image = write_digits(tmp_path / "in" / "pair.png", [6, 8])
    out = tmp_path / "normalized"
    assert main(["predict", str(image), "--save-normalized", str(out)]) == 0
    reading = Recognizer.load("default").read(image)
    saved = sorted(out.iterdir())
    assert [p.name for p in saved] == ["pair-0.png", "pair-1.png"]
    for path, expected in zip(saved, reading.normalized, strict=True):
        pixels = np.asarray(Image.open(path))
        assert pixels.shape == (28, 28) and pixels.dtype == np.uint8
        np.testing.assert_allclose(pixels / 255, expected, atol=1 / 255)


def test_bad_model_or_empty_folder_is_a_clear_error(tmp_path, capsys):
    image = write_digits(tmp_path / "x.png", [1])
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    assert main(["predict", str(image), "--model", str(bad)]) == 2
    assert "not a valid ONNX model" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(tmp_path / "empty")]) == 2
    assert "no image files found" in capsys.readouterr().err


@pytest.mark.timeout(20)
def test_malformed_files_and_special_files_get_their_errors_and_the_others_are_read(
    tmp_path, capsys, monkeypatch
):
    good = write_digits(tmp_path / "good.png", [2, 4])
    (tmp_path / "header.bmp").write_bytes(b"BM" + bytes(12) + struct.pack("<I", 40) + bytes(40))
    (tmp_path / "signature.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    (tmp_path / "large.png").write_bytes(good.read_bytes() + bytes(2000))
    monkeypatch.setattr(decoding, "MAX_FILE_BYTES", good.stat().st_size + 1000)  # under large
    names = ["header.bmp", "signature.png", "large.png", "good.png"]
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.png")
        names.append("pipe.png")
    assert main(["predict", *(str(tmp_path / name) for name in names), "--json"]) == 1
    errors = {Path(line["file"]).name: line["error"] for line in json_lines(capsys)}
    assert errors.pop("good.png") is None
    assert errors.pop("header.bmp").startswith("truncated or corrupt BMP image: ")
    assert errors.pop("signature.png").endswith("corrupt PNG image: unreadable header")
    limit = good.stat().st_size + 1000
    assert errors.pop("large.png").endswith(f"over the size limit of {limit:,} bytes")
    assert all("is a named pipe (FIFO)" in error for error in errors.values())


def test_max_pixels_sets_the_largest_image_read(tmp_path, capsys):
    image = write_digits(tmp_path / "digits.png", [1, 2])
    pixels = Image.open(image).width * Image.open(image).height
    assert main(["predict", str(image), "--json", "--max-pixels", str(pixels)]) == 0
    assert main(["predict", str(image), "--json", "--max-pixels", str(pixels - 1)]) == 1
    good, refused = json_lines(capsys)
    assert good["error"] is None and len(good["digits"]) == 2
    assert f"over the limit of {pixels - 1:,} pixels" in refused["error"]
    assert main(["predict", str(image), "--max-pixels", "0"]) == 2
    assert "--max-pixels must be positive" in capsys.readouterr().err


def test_a_run_directory_is_read_with_its_onnx_model_and_a_keras_one_says_how_to_export(
    tmp_path, capsys
):
    image = write_digits(tmp_path / "x.png", [7])
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(b"")
    assert main(["predict", str(image), "--model", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("digitrec predict: error: ")
    assert f"digitrec export {run} --format onnx" in err
    default = resources.files("digitrec") / "assets" / "default.onnx"
    (run / "model.onnx").write_bytes(default.read_bytes())
    assert main(["predict", str(image), "--model", str(run), "--json"]) == 0
    (line,) = json_lines(capsys)
    assert line["text"] == Recognizer.load("default").read(image).text


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_shown_on_a_terminal_for_many_files(tmp_path, capsys, monkeypatch):
    for k in range(3):
        write_digits(tmp_path / f"{k}.png", [k])
    monkeypatch.setattr(predict, "PROGRESS_FROM", 3)
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert main(["predict", str(tmp_path), "--json"]) == 0
    assert "3/3" in terminal.getvalue() and "image/s" in terminal.getvalue()
    assert len(json_lines(capsys)) == 3  # each line whole, none mixed with the bar


def test_no_progress_codes_when_stderr_is_not_a_terminal_or_files_are_few(
    tmp_path, capsys, monkeypatch
):
    for k in range(3):
        write_digits(tmp_path / f"{k}.png", [k])
    monkeypatch.setattr(predict, "PROGRESS_FROM", 3)
    assert main(["predict", str(tmp_path)]) == 0  # captured: not a terminal
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(predict, "PROGRESS_FROM", 4)
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert main(["predict", str(tmp_path)]) == 0
    assert terminal.getvalue() == ""
