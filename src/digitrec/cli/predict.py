"""``digitrec predict``: read the digits in image files and folders, as a table or JSON lines."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from digitrec.recognizer import Recognizer

PROGRESS_FROM = 20  # a progress bar is shown (on a terminal) from this many files on


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="read the digits in images",
        description=(
            "Read the digits in image files and folders (recursively). One unreadable file gets "
            "its own error and the others are still read; the exit status is 1 if any failed."
        ),
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image file or folder")
    parser.add_argument(
        "--model",
        default="default",
        help="a .onnx model file, a run directory holding model.onnx, or 'default' (packaged)",
    )
    parser.add_argument("--top-k", type=int, default=3, help="classes listed per digit (default 3)")
    parser.add_argument("--json", action="store_true", help="one JSON object per image per line")
    parser.add_argument("--single", action="store_true", help="each image is exactly one digit")
    parser.add_argument(
        "--save-normalized", type=Path, metavar="DIR", help="write the 28x28 images the model saw"
    )
    parser.add_argument("--threads", type=int, help="ONNX Runtime threads (default: its choice)")
    parser.add_argument("--max-pixels", type=int, help="largest image accepted, in pixels")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from digitrec.errors import DigitrecError
    from digitrec.recognizer import Recognizer

    if args.top_k < 1:
        raise DigitrecError("--top-k must be at least 1")
    if args.max_pixels is not None and args.max_pixels < 1:
        raise DigitrecError("--max-pixels must be positive")
    files = list(image_files(args.paths))
    if not files:
        raise DigitrecError("no image files found in " + ", ".join(map(str, args.paths)))
    recognizer = Recognizer.load(args.model, threads=args.threads)
    saver = NormalizedSaver(args.save_normalized) if args.save_normalized else None
    width = max(len(str(path)) for path in files)
    failed = 0
    # On a terminal only (disable=None): redirected, stderr gets no progress codes.
    progress = tqdm(
        files, unit="image", file=sys.stderr, disable=None if len(files) >= PROGRESS_FROM else True
    )
    with warnings.catch_warnings():
        # Pillow's own remarks on a malformed file repeat the error its line reports.
        warnings.filterwarnings("ignore", module="PIL")
        for path in progress:
            result = read_file(recognizer, path, args, saver)
            failed += result["error"] is not None
            line = json.dumps(result) if args.json else table_row(result, width)
            progress.write(line, sys.stdout)  # clears the bar, if any, and draws it again
            sys.stdout.flush()
    if failed and not args.json:
        print(f"{failed} of {len(files)} images could not be read", file=sys.stderr)
    return 1 if failed else 0


def read_file(
    recognizer: Recognizer, path: Path, args: argparse.Namespace, saver: NormalizedSaver | None
) -> dict[str, Any]:
    """One file's result: its reading, or the error that kept it from being read."""
    from digitrec.errors import DigitrecError
    from digitrec.imaging import MAX_PIXELS

    result: dict[str, Any] = {
        "file": str(path),
        "text": "",
        "digits": [],
        "lines": [],
        "error": None,
    }
    try:
        reading = recognizer.read(
            path, args.single, args.top_k, max_pixels=args.max_pixels or MAX_PIXELS
        )
    except DigitrecError as exc:
        result["error"] = str(exc)
    else:
        result.update(reading.to_dict())
        if saver:
            saver.save(path, reading.normalized)
    return result


def image_files(paths: list[Path]) -> Iterator[Path]:
    """Each named file as given (even if it will fail to read), and the image files found in
    each named folder, recursively and sorted; hidden files are passed over."""
    from PIL import Image

    suffixes = set(Image.registered_extensions())
    for path in paths:
        if not path.is_dir():
            yield path
            continue
        for found in sorted(path.rglob("*")):
            hidden = any(part.startswith(".") for part in found.relative_to(path).parts)
            if found.is_file() and not hidden and found.suffix.lower() in suffixes:
                yield found


def table_row(result: dict[str, Any], width: int) -> str:
    """Aligned rows, one per line read (top to bottom): the file (on the first row), the
    line's text, and each of its digits with its confidence."""
    if result["error"]:
        return f"{result['file']:<{width}}  error: {result['error']}"
    lines = result["lines"] or [{"text": "(no digits)", "digits": []}]
    rows = []
    for k, line in enumerate(lines):
        digits = "  ".join(
            f"{digit['label']} ({digit['confidence']:.1%})"
            if digit["label"] is not None
            else f"? (best {digit['top'][0][0]}, {digit['confidence']:.1%})"
            for digit in line["digits"]
        )
        name = result["file"] if k == 0 else ""
        rows.append(f"{name:<{width}}  {line['text']:<12}  {digits}".rstrip())
    return "\n".join(rows)


class NormalizedSaver:
    """Writes each image's 28x28 model inputs as ``DIR/<name>-<k>.png`` (names kept unique)."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.used: set[str] = set()

    def save(self, source: Path, images: list[Any]) -> None:
        import numpy as np
        from PIL import Image

        from digitrec.files import atomic_path

        name, count = source.stem, 1
        while name in self.used:
            count += 1
            name = f"{source.stem}~{count}"
        self.used.add(name)
        for k, image in enumerate(images):
            pixels = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
            with atomic_path(self.directory / f"{name}-{k}.png", suffix=".png") as tmp:
                Image.fromarray(pixels).save(tmp)
