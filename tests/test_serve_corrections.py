"""Corrections (``digitrec serve --collect DIR``): stored only when collecting, cut with the
boxes of the reading they correct: digits as class folders that ``digitrec.read.image_folders`` reads
back into the same labels, lines as images listed with their text in ``lines/labels.csv``; all
or nothing, within the collection's size limit; refused clearly when the lines do not pair up."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw
from serve_support import (
    PHOTO,
    PNG,
    RECOGNIZE,
    TWO_LINES,
    default_recognizer,
    drawn_ones,
    local_client,
    number_png,
    page_png,
    png_bytes,
)
from starlette.exceptions import HTTPException

from digitrec.read.image_folders import LINE_LABELS, LINES_FOLDER, files_under, read_image_folders
from digitrec.read.options import ReadOptions
from digitrec.serve import app as app_module
from digitrec.serve import corrections
from digitrec.serve.app import ServeSettings, create_app
from digitrec.serve.corrections import (
    USAGE_FILE,
    Collection,
    Correction,
    Cut,
    LabelRows,
    corrected_lines,
    disk_use,
)
from digitrec.serve.settings import MEGABYTE
from digitrec.training.evaluate import string_labels

CORRECTIONS = "/api/v1/corrections"


def correction(image: bytes, digits: str | None, **options) -> dict:
    fields = {} if digits is None else {"digits": digits}
    files = {"image": ("number.png", image, "image/png")}
    return {"files": files, "data": fields, "params": options}


def one_digit(label: str) -> Correction:
    """A correction of one 28×28 digit, stored straight into a collection."""
    image = np.zeros((28, 28), np.float32)
    image[8:20, 12:16] = 1
    return Correction(label, [Cut(label, image, (0, 0, 28, 28))], [])


def collecting_client(folder: Path, **limits) -> TestClient:
    collecting = ServeSettings(collect_dir=str(folder), **limits)
    return local_client(create_app(default_recognizer(), collecting))


def files_in(folder: Path) -> list[Path]:
    """Every file under ``folder``, hidden ones too, relative to it."""
    return sorted(path.relative_to(folder) for path in folder.rglob("*") if path.is_file())


def images_in(folder: Path) -> list[Path]:
    """The files under ``folder`` but the collection's tally of its usage."""
    return [path for path in files_in(folder) if path != Path(USAGE_FILE)]


def line_rows(folder: Path) -> list[tuple[str, str]]:
    """The rows (file, text) of the collection's labels of lines, under its header."""
    with (folder / LINES_FOLDER / LINE_LABELS).open(newline="") as labels:
        header, *rows = csv.reader(labels)
    assert header == ["file", "text"]
    return [tuple(row) for row in rows]


def test_without_collect_corrections_are_404_and_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(app_module, "store_correction", lambda *a: pytest.fail("stored"))
    monkeypatch.setattr(corrections, "atomic_path", lambda *a, **k: pytest.fail("written"))
    with local_client(create_app(default_recognizer())) as client:
        assert client.get("/api/v1/config").json() == {"corrections": False}
        response = client.post(CORRECTIONS, **correction(number_png("17"), "17"))
    assert response.status_code == 404
    assert "--collect" in response.json()["error"]
    assert files_in(tmp_path) == []


def test_a_correction_stores_what_the_model_saw_of_each_digit_in_its_class_folder(tmp_path):
    image = number_png("4096")
    with collecting_client(tmp_path) as client:
        assert client.get("/api/v1/config").json() == {"corrections": True}
        response = client.post(CORRECTIONS, **correction(image, "4 0 9 1", reader="digits"))
    assert response.status_code == 201, response.text
    body = response.json()
    reading = default_recognizer().read(image, reader="digits")
    assert body["read"] == reading.text
    assert body["lines"] == []
    assert [item["label"] for item in body["stored"]] == ["4", "0", "9", "1"]
    assert [item["box"] for item in body["stored"]] == [list(d.box) for d in reading.digits]
    written = images_in(tmp_path)
    assert sorted(Path(item["file"]) for item in body["stored"]) == written
    assert files_in(tmp_path) == [Path(USAGE_FILE), *written]
    for item, seen in zip(body["stored"], reading.normalized, strict=True):
        assert item["file"].startswith(f"{item['label']}/") and item["file"].endswith(".png")
        stored = np.asarray(Image.open(tmp_path / item["file"]))
        assert stored.dtype == np.uint8
        assert np.array_equal(stored, np.rint(seen * 255).astype(np.uint8))
    assert body["collection"] == {
        "files": 4,
        "bytes": sum(disk_use(tmp_path / path) for path in written),
        "max_files": ServeSettings.collect_max_files,
        "max_bytes": ServeSettings.collect_max_bytes,
    }


def test_stored_corrections_are_read_back_as_a_dataset_with_the_same_labels(tmp_path):
    numbers = {"4096": 1, "1717": 2, "385": 3}
    with collecting_client(tmp_path) as client:
        for digits, seed in numbers.items():
            image = number_png(digits, seed)
            response = client.post(CORRECTIONS, **correction(image, digits, reader="digits"))
            assert response.status_code == 201, response.text
    data = read_image_folders([tmp_path])
    assert data.skipped == []
    assert sorted(data.labels.tolist()) == sorted(int(d) for d in "".join(numbers))
    for path, image in zip(data.files, data.images, strict=True):
        stored = np.asarray(Image.open(path)) / 255
        assert np.abs(image - stored).mean() < 0.05  # normalized again: at most a pixel's shift


@pytest.mark.parametrize(("image", "digits"), [("17", "1"), ("17", "171"), ("385", "38")])
def test_a_correction_with_another_number_of_digits_is_stored_as_the_line_with_its_text(
    tmp_path, image, digits
):
    """It was refused (422: "the image has 2 digits but the correction gives 1")."""
    data = number_png(image)
    with collecting_client(tmp_path) as client:
        response = client.post(CORRECTIONS, **correction(data, digits, reader="digits"))
    assert response.status_code == 201, response.text
    body = response.json()
    [line] = default_recognizer().read(data, reader="digits").lines
    assert body["stored"] == []
    assert [(item["text"], tuple(item["box"])) for item in body["lines"]] == [(digits, line.box)]
    assert line_rows(tmp_path) == [(Path(body["lines"][0]["file"]).name, digits)]
    assert images_in(tmp_path) == sorted(
        [Path(LINES_FOLDER, LINE_LABELS), Path(body["lines"][0]["file"])]
    )


@pytest.mark.parametrize(
    ("digits", "message"),
    [
        ("4a", "must be the digits"),
        ("17\n2a", "must be the digits"),
        ("\n \n", "must be the digits"),
        ("", "must be the digits"),
        ("  ", "must be the digits"),
        ("-1", "must be the digits"),
        ("?7", "must be the digits"),
        (None, "no text field 'digits'"),
    ],
)
def test_digits_that_are_not_digits_are_422(tmp_path, digits, message):
    with collecting_client(tmp_path) as client:
        response = client.post(CORRECTIONS, **correction(number_png("17"), digits))
    assert response.status_code == 422
    assert message in response.json()["error"]
    assert files_in(tmp_path) == []


def test_a_correction_not_sent_as_a_form_with_an_image_is_refused(tmp_path):
    with collecting_client(tmp_path) as client:
        raw = client.post(
            CORRECTIONS, content=number_png("17"), headers={"content-type": "image/png"}
        )
        no_image = client.post(CORRECTIONS, data={"digits": "17"}, files={"other": ("x", b"x")})
        text = client.post(
            CORRECTIONS, data={"digits": "1"}, files={"image": ("a.txt", b"one", "text/plain")}
        )
        broken = client.post(CORRECTIONS, **correction(number_png("17")[:80], "17"))
    assert raw.status_code == 415
    assert "multipart/form-data" in raw.json()["error"]
    assert no_image.status_code == 422
    assert text.status_code == 415
    assert broken.status_code == 422
    assert "truncated" in broken.json()["error"]
    assert files_in(tmp_path) == []


def test_a_full_collection_is_507_and_stores_nothing_more(tmp_path):
    with collecting_client(tmp_path, collect_max_files=3) as client:
        assert client.post(CORRECTIONS, **correction(number_png("17"), "17")).status_code == 201
        full = client.post(CORRECTIONS, **correction(number_png("17"), "17"))
        assert full.status_code == 507
        assert "full" in full.json()["error"]
        assert len(images_in(tmp_path)) == 2
        last = client.post(CORRECTIONS, **correction(drawn_ones(), "1"))
        assert last.status_code == 201
        assert last.json()["collection"]["files"] == 3
    with collecting_client(tmp_path / "small", collect_max_bytes=300) as client:
        response = client.post(CORRECTIONS, **correction(number_png("4096"), "4096"))
    assert response.status_code == 507
    assert not (tmp_path / "small").exists()


def test_files_put_in_the_collection_by_others_count_towards_its_limit(tmp_path):
    (tmp_path / "5").mkdir()
    for name in ("a.png", "b.png", "c.png"):
        (tmp_path / "5" / name).write_bytes(b"x" * 10)
    with collecting_client(tmp_path, collect_max_files=4) as client:
        assert client.post(CORRECTIONS, **correction(number_png("17"), "17")).status_code == 507
        response = client.post(CORRECTIONS, **correction(drawn_ones(), "1"))
    assert response.json()["collection"] == {
        "files": 4,
        "bytes": 3 * disk_use(tmp_path / "5" / "a.png")
        + disk_use(tmp_path / response.json()["stored"][0]["file"]),
        "max_files": 4,
        "max_bytes": ServeSettings.collect_max_bytes,
    }


def test_the_same_correction_twice_is_stored_twice_under_new_names(tmp_path):
    with collecting_client(tmp_path) as client:
        for _ in range(2):
            assert client.post(CORRECTIONS, **correction(number_png("11"), "11")).status_code == 201
    assert len({path.name for path in images_in(tmp_path)}) == 4


def test_a_correction_that_fails_midway_leaves_no_file_at_all(tmp_path, monkeypatch):
    real_atomic_path, calls = corrections.atomic_path, []

    @contextmanager
    def failing_second(final, suffix=""):
        calls.append(final)
        with real_atomic_path(final, suffix) as tmp:
            yield tmp
            if len(calls) == 2:
                raise OSError("disk full")

    monkeypatch.setattr(corrections, "atomic_path", failing_second)
    app = create_app(default_recognizer(), ServeSettings(collect_dir=str(tmp_path)))
    client = TestClient(app, base_url="http://localhost", raise_server_exceptions=False)
    response = client.post(CORRECTIONS, **correction(number_png("385"), "385"))
    assert response.status_code == 500
    assert len(calls) == 2
    assert files_in(tmp_path) == []


def test_the_limit_holds_for_corrections_stored_at_once(tmp_path):
    collection = Collection(tmp_path, max_files=5, max_bytes=10**6)

    def store(_) -> int:
        try:
            collection.store(one_digit("7"))
        except HTTPException as error:
            return error.status_code
        return 201

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(store, range(12)))
    assert sorted(statuses) == [201] * 5 + [507] * 7
    assert len(images_in(tmp_path)) == 5


STORE_IN_ANOTHER_PROCESS = """
import sys, numpy as np
from pathlib import Path
from digitrec.serve.corrections import Collection, Correction, Cut
collection = Collection(Path(sys.argv[1]), max_files=5, max_bytes=10**6)
print("ready", flush=True)
collection.store(Correction("7", [Cut("7", np.ones((28, 28), np.float32), (0, 0, 28, 28))], []))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="Windows has no advisory locks")
def test_another_worker_process_waits_for_the_collection_while_one_writes(tmp_path):
    with Collection(tmp_path, max_files=5, max_bytes=10**6).writing():
        other = subprocess.Popen(
            [sys.executable, "-c", STORE_IN_ANOTHER_PROCESS, str(tmp_path)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert other.stdout.readline().strip() == "ready"
        time.sleep(1.0)  # long enough for it to write, were it not waiting
        assert files_in(tmp_path) == []
        released = time.time()
    assert other.wait(timeout=60) == 0
    [stored] = images_in(tmp_path)
    assert (tmp_path / stored).stat().st_mtime >= released - 0.05


def test_the_corrections_endpoint_is_documented_with_its_form_and_answers(tmp_path):
    with collecting_client(tmp_path) as client:
        operation = client.get("/openapi.json").json()["paths"][CORRECTIONS]["post"]
    form = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["image", "digits"]
    assert {"201", "404", "422", "507"} <= set(operation["responses"])
    assert {"single", "reader"} <= {parameter["name"] for parameter in operation["parameters"]}


def test_a_stored_image_is_a_png_the_size_of_the_models_input(tmp_path):
    with collecting_client(tmp_path) as client:
        body = client.post(CORRECTIONS, **correction(drawn_ones(), "1")).json()
    stored = Image.open(io.BytesIO((tmp_path / body["stored"][0]["file"]).read_bytes()))
    assert (stored.format, stored.mode, stored.size) == ("PNG", "L", (28, 28))


def others_files(folder: Path, count: int) -> list[Path]:
    """``count`` small files put in class folder 5 by someone else."""
    (folder / "5").mkdir(parents=True, exist_ok=True)
    paths = [folder / "5" / f"other-{i}.png" for i in range(count)]
    for path in paths:
        path.write_bytes(b"x" * 10)
    return paths


@pytest.mark.skipif(not hasattr(os.stat_result, "st_blocks"), reason="no block counts")
def test_the_byte_limit_counts_the_disk_space_files_take_not_their_sizes(tmp_path):
    """Ten bytes take a whole block (4 KB on most file systems): 3 such files and a correction
    of a few hundred bytes do not fit in 3 blocks and a half."""
    [path, *_] = others_files(tmp_path, 3)
    block = disk_use(path)
    if block <= 10:
        pytest.skip("this file system stores small files in no whole block")
    with collecting_client(tmp_path, collect_max_bytes=3 * block + block // 2) as client:
        response = client.post(CORRECTIONS, **correction(drawn_ones(), "1"))
    assert response.status_code == 507
    assert f"{3 * block / MEGABYTE:.2f} MB of disk" in response.json()["error"]
    assert len(images_in(tmp_path)) == 3


def test_a_correction_does_not_list_the_collection_once_its_usage_is_tallied(tmp_path, monkeypatch):
    """Listing 10,000 files under the lock took 87 ms a correction: the tally saved beside the
    class folders is read instead, while none of them has changed since."""
    others_files(tmp_path, 3)
    listed: list[Path] = []

    def listing(folder: Path) -> list[Path]:
        listed.append(folder)
        return files_under(folder)

    monkeypatch.setattr(corrections, "files_under", listing)
    with collecting_client(tmp_path) as client:
        first = client.post(CORRECTIONS, **correction(number_png("17"), "17"))
        assert listed == [tmp_path / "5"]  # no tally yet: counted from the files
        second = client.post(CORRECTIONS, **correction(number_png("385"), "385"))
    assert (first.status_code, second.status_code) == (201, 201)
    assert listed == [tmp_path / "5"]
    assert second.json()["collection"]["files"] == 8
    assert second.json()["collection"]["bytes"] == sum(
        disk_use(tmp_path / path) for path in images_in(tmp_path)
    )


def changed_later(folder: Path) -> None:
    """Move a folder's modification time a second on, as a change made after the tally was
    saved would (a change within the file system's time resolution of it could go unseen)."""
    mtime = folder.stat().st_mtime_ns + 1_000_000_000
    os.utime(folder, ns=(mtime, mtime))


@pytest.mark.parametrize("tally", ["kept", "malformed", "not JSON", "removed"])
def test_the_usage_is_counted_again_when_others_changed_the_folders_or_the_tally_is_bad(
    tmp_path, tally
):
    with collecting_client(tmp_path) as client:
        stored = client.post(CORRECTIONS, **correction(number_png("17"), "17")).json()["stored"]
        (tmp_path / stored[0]["file"]).unlink()  # removed by someone else
        changed_later(tmp_path / stored[0]["label"])
        others_files(tmp_path, 2)  # and added
        if tally == "malformed":
            (tmp_path / USAGE_FILE).write_text('{"files": -1, "bytes": "lots", "folders": {}}')
        elif tally == "not JSON":
            (tmp_path / USAGE_FILE).write_text("{")
        elif tally == "removed":
            (tmp_path / USAGE_FILE).unlink()
        response = client.post(CORRECTIONS, **correction(drawn_ones(), "1"))
    assert response.status_code == 201
    assert response.json()["collection"]["files"] == 1 + 2 + 1
    assert response.json()["collection"]["bytes"] == sum(
        disk_use(tmp_path / path) for path in images_in(tmp_path)
    )


def peak_memory(work: Callable[[], Any]) -> tuple[Any, int]:
    """What ``work()`` returns (or the HTTPException it raises) and the most memory Python
    and NumPy held at once while it ran, in bytes."""
    tracemalloc.start()
    try:
        try:
            result = work()
        except HTTPException as error:
            result = error
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("reader", ["digits", "pages"])
def test_a_tall_image_is_decoded_no_larger_than_reading_it_needs(tmp_path, reader):
    """Four 76 KB tall PNGs at once took the server from 150 MB to 2.6 GB, decoded at full
    size: a correction decodes an image as recognition does, reduced while decoding (and so
    does the cutting of its lines), and is cut with the boxes recognition finds."""
    image = Image.new("L", (400, 40_000), 255)
    ImageDraw.Draw(image).line([(200, 2000), (200, 38000)], fill=0, width=60)
    data = png_bytes(image)
    collection = Collection(tmp_path, max_files=10, max_bytes=10**6)
    full_size = 400 * 40_000 * 4  # bytes of the float32 grey image a full-size decoding makes
    reading, reading_peak = peak_memory(lambda: default_recognizer().read(data, reader=reader))
    receipt, peak = peak_memory(
        lambda: corrections.store_correction(
            collection, default_recognizer(), data, "1", ReadOptions(reader=reader)
        )
    )
    assert peak < reading_peak + full_size / 8
    stored = [] if isinstance(receipt, HTTPException) else receipt["stored"] + receipt["lines"]
    boxes = [digit.box for digit in reading.digits] + [line.box for line in reading.lines]
    assert {tuple(item["box"]) for item in stored} == set(boxes), receipt


# --- cut with the reading's boxes: photos, pages, drawn numbers -----------------------------------

IMAGES = {
    "a photo": page_png(*PHOTO),
    "a two-line page": page_png(*TWO_LINES),
    "a drawn number": drawn_ones(3),
}


def changed(text: str, change: str) -> str:
    """The reading's text as a user corrects it: unsure digits ("?") given, and ``change``."""
    lines = text.replace("?", "0").split("\n")
    if change == "a digit more":
        lines[-1] += "7"
    elif change == "a digit less":
        longest = max(range(len(lines)), key=lambda k: len(lines[k].replace(" ", "")))
        lines[longest] = lines[longest].rstrip()[:-1].rstrip()
    return "\n".join(lines)


@pytest.mark.parametrize("change", ["as read", "a digit more", "a digit less"])
@pytest.mark.parametrize("name", IMAGES)
def test_a_correction_is_cut_with_the_boxes_of_the_reading_it_corrects(tmp_path, name, change):
    """On photos and pages the digits were cut by another segmenter than the one that read
    them: "image has 1 digit but the correction gives 5", even with the reading unchanged.
    Each line now pairs with a line read: its digits are stored where they are as many as
    those read, the line itself where the page reader read it or they are not."""
    image = IMAGES[name]
    with collecting_client(tmp_path) as client:
        reading = client.post(RECOGNIZE, content=image, headers=PNG).json()
        text = changed(reading["text"], change)
        response = client.post(CORRECTIONS, **correction(image, text))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["read"] == reading["text"]
    by_page_reader = not reading["normalized"]
    assert by_page_reader == (name != "a drawn number")
    assert len(reading["lines"]) == (2 if name == "a two-line page" else 1)
    expected_lines, expected_digits = [], []
    for line, corrected in zip(reading["lines"], text.split("\n"), strict=True):
        labels = corrected.replace(" ", "")
        same_count = len(labels) == len(line["digits"])
        if by_page_reader or not same_count:
            expected_lines.append((corrected, line["box"]))
        if same_count:
            expected_digits += [
                (label, digit["box"]) for label, digit in zip(labels, line["digits"], strict=True)
            ]
    assert [(item["text"], item["box"]) for item in body["lines"]] == expected_lines
    stored_digits = [(item["label"], item["box"]) for item in body["stored"]]
    if by_page_reader:  # those the classifier finds a piece of ink for, in order
        assert stored_digits == [item for item in expected_digits if item in stored_digits]
        assert stored_digits or change != "as read"
    else:
        assert stored_digits == expected_digits
    assert_stored_as_received(tmp_path, body)


def assert_stored_as_received(folder: Path, body: dict) -> None:
    """The collection holds what the receipt lists, in the layout each kind is read in: each
    digit a 28×28 PNG in its class folder, each line a grey PNG at least its box in size, in
    the lines folder, with its text in the labels file; and the tally counts them all."""
    digit_files = [Path(item["file"]) for item in body["stored"]]
    line_files = [Path(item["file"]) for item in body["lines"]]
    labels = [Path(LINES_FOLDER, LINE_LABELS)] if line_files else []
    assert images_in(folder) == sorted(digit_files + line_files + labels)
    for item, path in zip(body["stored"], digit_files, strict=True):
        assert path.parent == Path(item["label"])
        assert Image.open(folder / path).size == (28, 28)
    for item, path in zip(body["lines"], line_files, strict=True):
        assert path.parent == Path(LINES_FOLDER)
        stored = Image.open(folder / path)
        x0, y0, x1, y1 = item["box"]
        assert stored.mode == "L"
        assert stored.width >= x1 - x0 and stored.height >= y1 - y0  # with a margin of paper
    if line_files:
        assert line_rows(folder) == [
            (path.name, item["text"]) for path, item in zip(line_files, body["lines"], strict=True)
        ]
    assert body["collection"]["files"] == len(images_in(folder))
    assert body["collection"]["bytes"] == sum(disk_use(folder / path) for path in images_in(folder))


def test_corrections_of_a_page_add_rows_to_the_labels_of_lines(tmp_path):
    image = page_png(*TWO_LINES)
    reading = default_recognizer().read(image)
    first, second = changed(reading.text, "as read"), changed(reading.text, "a digit more")
    with collecting_client(tmp_path) as client:
        for text in (first, second):
            assert client.post(CORRECTIONS, **correction(image, text)).status_code == 201
    assert [text for _, text in line_rows(tmp_path)] == first.split("\n") + second.split("\n")
    assert len({name for name, _ in line_rows(tmp_path)}) == 4


def test_the_stored_lines_are_a_folder_digitrec_evaluate_strings_reads(tmp_path):
    """lines/ is the layout of images of written numbers that ``--strings DIR`` takes."""
    image = page_png(*TWO_LINES)
    text = changed(default_recognizer().read(image).text, "a digit more")
    with collecting_client(tmp_path) as client:
        body = client.post(CORRECTIONS, **correction(image, text)).json()
    listed = string_labels(tmp_path / LINES_FOLDER)
    assert listed == {
        tmp_path / item["file"]: item["text"].replace(" ", "") for item in body["lines"]
    }


@pytest.mark.parametrize(
    ("image", "text", "message"),
    [
        (TWO_LINES, "{one}{two}", "read as 2 lines but the correction gives 1"),
        (PHOTO, "{one}\n{one}", "read as 1 line but the correction gives 2"),
    ],
)
def test_a_correction_with_another_number_of_lines_than_the_reading_is_422(
    tmp_path, image, text, message
):
    data = page_png(*image)
    lines = changed(default_recognizer().read(data).text, "as read").split("\n")
    text = text.format(one=lines[0], two=lines[-1])
    with collecting_client(tmp_path) as client:
        response = client.post(CORRECTIONS, **correction(data, text))
    assert response.status_code == 422
    assert message in response.json()["error"]
    assert "line by line" in response.json()["error"]
    assert files_in(tmp_path) == []


def test_a_correction_of_an_image_with_nothing_read_is_422(tmp_path):
    blank = png_bytes(np.full((200, 300), 255, np.uint8))
    with collecting_client(tmp_path) as client:
        response = client.post(CORRECTIONS, **correction(blank, "17"))
    assert response.status_code == 422
    assert "no digits were read in the image" in response.json()["error"]
    assert files_in(tmp_path) == []


def test_a_correction_is_cut_with_the_reading_of_the_options_it_was_read_with(tmp_path):
    """The same number read by the page reader or the classifier has other boxes: the
    correction takes the options of the reading it corrects."""
    image = number_png("4096")
    with collecting_client(tmp_path) as client:
        bodies = {}
        for reader in ("pages", "digits"):
            read = client.post(RECOGNIZE, content=image, headers=PNG, params={"reader": reader})
            text = read.json()["text"]
            response = client.post(CORRECTIONS, **correction(image, text, reader=reader))
            assert response.status_code == 201, response.text
            bodies[reader] = response.json()
            assert bodies[reader]["read"] == text
            assert [item["box"] for item in response.json()["lines"]] == (
                [line["box"] for line in read.json()["lines"]] if reader == "pages" else []
            )
    assert bodies["digits"]["stored"] and not bodies["digits"]["lines"]


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("4096", ["4096"]),
        (" 17   25 ", ["17 25"]),
        ("17 25\r\n\r\n300\n", ["17 25", "300"]),
        ("\n1\n\n2\n", ["1", "2"]),
    ],
)
def test_the_corrected_text_is_taken_as_lines_of_groups_of_digits(text, lines):
    assert corrected_lines(text) == lines


def test_rows_go_on_their_own_line_after_a_labels_file_edited_by_hand(tmp_path):
    labels = tmp_path / LINE_LABELS
    labels.write_text("file,text\nmine.png,12")  # no line break after the last row
    rows = LabelRows(labels)
    rows.append([("new.png", "17 25")])
    assert labels.read_text() == "file,text\nmine.png,12\nnew.png,17 25\n"
    rows.undo()
    assert labels.read_text() == "file,text\nmine.png,12"


def test_a_correction_that_fails_after_its_rows_are_written_leaves_the_collection_as_it_was(
    tmp_path, monkeypatch
):
    image = page_png(*PHOTO)
    text = changed(default_recognizer().read(image).text, "as read")
    with collecting_client(tmp_path) as client:
        assert client.post(CORRECTIONS, **correction(image, text)).status_code == 201
    before = {path: (tmp_path / path).read_bytes() for path in files_in(tmp_path)}

    def failing(self, files, size):
        raise OSError("disk full")

    monkeypatch.setattr(Collection, "save_usage", failing)
    app = create_app(default_recognizer(), ServeSettings(collect_dir=str(tmp_path)))
    client = TestClient(app, base_url="http://localhost", raise_server_exceptions=False)
    assert client.post(CORRECTIONS, **correction(image, text)).status_code == 500
    assert {path: (tmp_path / path).read_bytes() for path in files_in(tmp_path)} == before


def test_a_full_collection_refuses_a_line_and_its_labels_file_too(tmp_path):
    image = page_png(*PHOTO)
    text = changed(default_recognizer().read(image).text, "a digit more")
    with collecting_client(tmp_path, collect_max_files=1) as client:
        response = client.post(CORRECTIONS, **correction(image, text))  # a line and labels.csv
    assert response.status_code == 507
    assert files_in(tmp_path) == []
