"""Your own images as a dataset (digitrec.read.image_folders): the class-folder layout, every common
format, unreadable files skipped and counted, a wrong layout refused before anything is
decoded, several folders combined, the recognizer's own input, and the stratified split."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from fresh_python import run_importing_none_of
from PIL import Image
from synthetic import Style, font_digit, user_digit_image

from digitrec.errors import DataError
from digitrec.read import image_folders
from digitrec.read.image_folders import (
    LINE_LABELS,
    LINES_FOLDER,
    ImageFolderData,
    class_files,
    read_image_folders,
)
from digitrec.read.recognizer import Recognizer
from digitrec.training.finetune import stratified_split


def digit_image(digit: int, size: int = 84) -> Image.Image:
    """A typeset digit, enlarged, dark on white: an image a user could have taken of it."""
    return Image.fromarray(255 - font_digit(digit)).resize((size, size), Image.Resampling.BICUBIC)


def write(path: Path, image: Image.Image | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(image, bytes):
        path.write_bytes(image)
    else:
        image.save(path)
    return path


def make_folder(root: Path, counts: dict[int, int]) -> list[Path]:
    """``counts[d]`` PNG images of digit d in ``root/d/``; the files in path order."""
    return [
        write(root / str(digit) / f"{digit}-{i}.png", digit_image(digit, 70 + 7 * i))
        for digit, count in counts.items()
        for i in range(count)
    ]


def test_a_class_folder_tree_reads_into_images_labels_and_the_file_list(tmp_path):
    files = make_folder(tmp_path, {0: 2, 1: 1, 7: 2})
    nested = write(tmp_path / "7" / "more" / "7-extra.png", digit_image(7))
    write(tmp_path / "7" / ".DS_Store", b"\x00\x01junk")  # hidden: ignored
    write(tmp_path / ".thumbnails" / "x.png", digit_image(3))  # hidden folder: ignored
    data = read_image_folders([tmp_path])
    assert data.files == [*files[:3], files[3], files[4], nested]
    assert data.labels.tolist() == [0, 0, 1, 7, 7, 7]
    assert data.labels.dtype == np.uint8
    assert data.images.shape == (6, 28, 28)
    assert data.images.dtype == np.float32
    assert data.images.min() >= 0
    assert data.images.max() == 1
    assert data.skipped == []
    assert data.class_counts() == {"0": 2, "1": 1, "7": 3}
    assert data.summary() == "6 images (0: 2, 1: 1, 7: 3)"
    assert data.uint8_images().dtype == np.uint8
    assert np.abs(data.uint8_images() / 255 - data.images).max() <= 0.5 / 255 + 1e-7


@pytest.mark.parametrize("format_", ["PNG", "JPEG", "BMP", "GIF", "WEBP"])
def test_every_common_image_format_is_read(tmp_path, format_):
    image = digit_image(4)
    (tmp_path / "4").mkdir()
    image.save(tmp_path / "4" / f"four.{format_.lower()}", format=format_)
    data = read_image_folders([tmp_path])
    assert data.skipped == []
    assert data.labels.tolist() == [4]


def test_unreadable_and_blank_files_are_skipped_listed_and_counted(tmp_path):
    make_folder(tmp_path, {3: 2})
    good = png_bytes(digit_image(3))
    broken = write(tmp_path / "3" / "broken.png", good[:60])
    notes = write(tmp_path / "3" / "notes.txt", b"my threes")
    blank = write(tmp_path / "3" / "blank.png", Image.new("L", (50, 50), 255))
    loose = write(tmp_path / "stray.png", digit_image(5))
    data = read_image_folders([tmp_path])
    assert len(data) == 2
    reasons = {skip.path: skip.reason for skip in data.skipped}
    assert set(reasons) == {broken, notes, blank, loose}
    assert "truncated" in reasons[broken]
    assert "not an image" in reasons[notes]
    assert "blank" in reasons[blank]
    assert "class folder" in reasons[loose]
    assert data.summary().endswith("4 files skipped")


def test_a_class_with_no_readable_image_is_an_error(tmp_path):
    make_folder(tmp_path, {1: 1})
    write(tmp_path / "2" / "scan.png", b"not really a png")
    with pytest.raises(DataError, match=r"2: no readable image among its 1 files.*scan\.png"):
        read_image_folders([tmp_path])


@pytest.mark.parametrize("name", ["four", "10", "x1"])
def test_a_folder_not_named_by_a_class_is_an_error_naming_the_classes(tmp_path, name):
    make_folder(tmp_path, {4: 1})
    write(tmp_path / name / "a.png", digit_image(4))
    with pytest.raises(DataError, match=rf"{name}: not a class folder.*0, 1, 2, .*9"):
        read_image_folders([tmp_path])


def test_an_empty_class_folder_is_an_error(tmp_path):
    make_folder(tmp_path, {1: 1})
    write(tmp_path / "7" / ".hidden.png", digit_image(7))
    with pytest.raises(DataError, match=r"7: the class folder is empty"):
        read_image_folders([tmp_path])


def test_a_folder_with_no_class_folders_is_an_error(tmp_path):
    with pytest.raises(DataError, match="no images: expected subfolders 0, 1"):
        read_image_folders([tmp_path])
    write(tmp_path / "one.png", digit_image(1))
    with pytest.raises(DataError, match="holds 1 files outside them"):
        read_image_folders([tmp_path])


def test_a_missing_folder_or_a_file_is_an_error(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        read_image_folders([tmp_path / "missing"])
    file = write(tmp_path / "one.png", digit_image(1))
    with pytest.raises(DataError, match="is a file, not a folder"):
        read_image_folders([file])
    with pytest.raises(DataError, match="no image folder"):
        read_image_folders([])


def test_every_folder_is_checked_before_any_image_is_decoded(tmp_path, monkeypatch):
    make_folder(tmp_path / "good", {1: 2})
    make_folder(tmp_path / "bad", {2: 1})
    (tmp_path / "bad" / "9").mkdir()
    monkeypatch.setattr(image_folders, "load_image", lambda *a: pytest.fail("decoded"))
    with pytest.raises(DataError, match="empty"):
        read_image_folders([tmp_path / "good", tmp_path / "bad"])


def test_several_folders_are_combined_in_order(tmp_path):
    first = make_folder(tmp_path / "mine", {1: 2, 4: 1})
    second = make_folder(tmp_path / "friend", {4: 2, 9: 1})
    write(tmp_path / "friend" / "9" / "bad.png", b"nope")
    data = read_image_folders([tmp_path / "mine", str(tmp_path / "friend")])
    assert data.files == first + second
    assert data.labels.tolist() == [1, 1, 4, 4, 4, 9]
    assert [skip.path.name for skip in data.skipped] == ["bad.png"]
    alone = read_image_folders(tmp_path / "friend")  # one folder may be given as it is
    assert np.array_equal(data.images[3:], alone.images)
    assert alone.files == second


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_each_image_is_exactly_what_the_recognizer_is_given_reading_it_as_one_digit(tmp_path):
    rng = np.random.default_rng(3)
    paths = [
        write(tmp_path / str(d) / f"{d}.jpg", user_digit_image(font_digit(d), rng, Style()))
        for d in (2, 5, 8)
    ]
    apart = np.concatenate([255 - font_digit(1), 255 - font_digit(7)], axis=1)  # two pieces
    paths.append(write(tmp_path / "9" / "apart.png", Image.fromarray(apart).resize((224, 112))))
    data = read_image_folders([tmp_path])
    recognizer = Recognizer.load("default")
    for path, image in zip(paths, data.images, strict=True):
        seen = recognizer.read(path, single=True).normalized
        assert len(seen) == 1
        assert np.array_equal(image, seen[0])


def folder_data(counts: dict[int, int]) -> ImageFolderData:
    labels = np.repeat(list(counts), list(counts.values())).astype(np.uint8)
    images = np.arange(len(labels), dtype=np.float32)[:, None, None] * np.ones((1, 28, 28))
    return ImageFolderData(images, labels, [Path(f"{i}.png") for i in range(len(labels))])


def test_the_stratified_split_holds_out_the_same_share_of_every_class():
    data = folder_data({1: 20, 4: 10, 7: 30})
    train, val = stratified_split(data, 0.2, seed=1)
    assert val.class_counts() == {"1": 4, "4": 2, "7": 6}
    assert train.class_counts() == {"1": 16, "4": 8, "7": 24}
    assert sorted(map(str, train.files + val.files)) == sorted(map(str, data.files))
    for part in (train, val):
        index = [int(path.stem) for path in part.files]
        assert np.array_equal(part.labels, data.labels[index])
        assert np.array_equal(part.images[:, 0, 0], data.images[index, 0, 0])
    again, _ = stratified_split(data, 0.2, seed=1)
    other, _ = stratified_split(data, 0.2, seed=2)
    assert again.files == train.files
    assert other.files != train.files


@pytest.mark.parametrize(
    ("counts", "fraction", "message"),
    [
        ({1: 5, 4: 1}, 0.2, "class 4 has a single image"),
        ({1: 5, 4: 5, 7: 5}, 0.1, "leaves 2 for validation"),
        ({1: 5, 4: 5}, 0.95, "leaves 10 for validation and 0 for training"),
        ({1: 5, 4: 5}, 0.0, "between 0 and 1"),
        ({1: 5, 4: 5}, 1.0, "between 0 and 1"),
    ],
)
def test_a_split_that_cannot_hold_every_class_is_a_clear_error(counts, fraction, message):
    with pytest.raises(DataError, match=message):
        stratified_split(folder_data(counts), fraction)


def test_reading_image_folders_imports_no_tensorflow_nor_scikit_learn(tmp_path):
    make_folder(tmp_path, {6: 1})
    code = (
        "from digitrec.read.image_folders import read_image_folders\n"
        f"assert len(read_image_folders([{str(tmp_path)!r}])) == 1\n"
    )
    result = run_importing_none_of(("tensorflow", "keras", "sklearn"), code)
    assert result.returncode == 0, result.stderr.decode()


def test_a_collections_lines_folder_is_passed_over_by_single_digit_training(tmp_path):
    for digit in "07":
        (tmp_path / digit).mkdir()
        Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / digit / "a.png")
    (tmp_path / LINES_FOLDER).mkdir()
    Image.fromarray(np.zeros((28, 90), np.uint8)).save(tmp_path / LINES_FOLDER / "l.png")
    (tmp_path / LINES_FOLDER / LINE_LABELS).write_text("file,text\nl.png,123\n")
    found = class_files(tmp_path)
    assert sorted(name for name in found if name) == ["0", "7"]
    (tmp_path / LINES_FOLDER / LINE_LABELS).unlink()  # without its labels: not ours
    with pytest.raises(DataError, match="not a class folder"):
        class_files(tmp_path)
