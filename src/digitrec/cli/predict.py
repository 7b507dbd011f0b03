"""``digitrec predict``: read the digits in image files and folders, as a table or JSON lines,
on the screen or into a file, in one process, several, or on Ray (``digitrec.batch``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

PROGRESS_FROM = 20  # a progress bar is shown (on a terminal) from this many files on


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from digitrec.read.options import DEFAULT_READER, READERS
    from digitrec.read.recognizer import DEFAULT_LINES, NO_LINES

    parser = subparsers.add_parser(
        "predict",
        help="read the digits in images",
        description=(
            "Read the digits in image files and folders (recursively). One unreadable file gets "
            "its own error and the others are still read; the exit status is 1 if any failed."
        ),
    )
    parser.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="image file or folder")
    parser.add_argument(
        "--files-from",
        metavar="FILE",
        help="also read the files and folders listed in FILE, one per line ('-': standard input)",
    )
    parser.add_argument(
        "--model",
        default="default",
        help="a .onnx model file, a run directory holding model.onnx, a train-lines run (its "
        "lines.onnx as the page reader, the packaged classifier beside it), or 'default' "
        "(packaged)",
    )
    parser.add_argument(
        "--lines",
        default=DEFAULT_LINES,
        metavar="MODEL",
        help=f"the page reader's line model, for any --model: '{DEFAULT_LINES}' (the default: "
        "the run directory's own lines.onnx, if --model is a run that has one, else the packaged "
        "one), 'documents' (the packaged one fine-tuned on lines like real documents': cheques' "
        "amounts, forms' cells), an exported line model (.onnx, or a folder holding lines.onnx "
        f"or a line run's model.onnx), or '{NO_LINES}' (no page reader: the classifier reads "
        "everything)",
    )
    parser.add_argument("--top-k", type=int, default=3, help="classes listed per digit (default 3)")
    parser.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per image per line, naming the models that read it ('model')",
    )
    parser.add_argument("--single", action="store_true", help="each image is exactly one digit")
    parser.add_argument(
        "--reader",
        choices=READERS,
        default=DEFAULT_READER,
        help="'digits': the single-digit classifier on the ink's pieces; 'pages': lines found "
        "and read by the line model (several lines, touching digits, form boxes); 'auto': the "
        f"page reader, or the classifier where it is surer (default: {DEFAULT_READER})",
    )
    parser.add_argument(
        "--save-normalized", type=Path, metavar="DIR", help="write the 28x28 images the model saw"
    )
    parser.add_argument("--threads", type=int, help="ONNX Runtime threads (default: its choice)")
    parser.add_argument("--max-pixels", type=int, help="largest image accepted, in pixels")
    parser.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="worker processes, each loading the model once (default 1; with --ray: Ray actors, "
        "default one per CPU); results then come in no set order",
    )
    parser.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        help="write one JSON line per image to FILE as results arrive, instead of the screen "
        "(FILE.parquet: a Parquet file, written when complete)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help=(
            "continue the --output of a stopped run: the images it lists are not read again, "
            "but those whose worker process ended"
        ),
    )
    parser.add_argument(
        "--ray",
        nargs="?",
        const=True,
        default=False,
        metavar="ADDRESS",
        help="read on Ray: a local instance, or the cluster at ADDRESS (needs digitrec[scale])",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from digitrec.batch.jobs import read_files, read_options
    from digitrec.batch.output import for_output
    from digitrec.read.imaging import MAX_PIXELS

    paths = [*args.paths, *listed_paths(args.files_from)]
    max_pixels = MAX_PIXELS if args.max_pixels is None else args.max_pixels
    job = read_files(
        paths,
        args.model,
        lines=args.lines,
        options=read_options(args.single, args.top_k, max_pixels, args.reader),
        threads=args.threads,
        jobs=args.jobs,
        output=args.output,
        resume=args.resume,
        ray=args.ray,
        save_normalized=args.save_normalized,
    )
    total = len(job.files) + job.skipped
    if job.skipped:
        print(f"{job.skipped:,} of {total:,} images already in {args.output}", file=sys.stderr)
    width = max((len(printable(file)) for file in job.files), default=0)
    failed = job.failed_before
    # On a terminal only (disable=None): redirected, stderr gets no progress codes.
    enough = len(job.files) >= PROGRESS_FROM
    with tqdm(
        total=len(job.files), unit="image", file=sys.stderr, disable=None if enough else True
    ) as progress:
        for result in job:
            failed += result["error"] is not None
            if not args.output:
                line = json.dumps(for_output(result)) if args.json else table_row(result, width)
                progress.write(line, sys.stdout)  # clears the bar, if any, and draws it again
                sys.stdout.flush()
            progress.update()
    if failed and (args.output or not args.json):
        print(f"{failed:,} of {total:,} images could not be read", file=sys.stderr)
    return 1 if failed else 0


def listed_paths(name: str | None) -> list[str]:
    """The paths listed in ``--files-from`` (none without it); ``-`` is standard input."""
    from digitrec.batch.jobs import listed_paths as paths_in
    from digitrec.errors import DigitrecError

    if name is None:
        return []
    if name == "-":
        return list(paths_in(sys.stdin, "-"))
    try:
        with open(name, encoding=sys.getfilesystemencoding(), errors="surrogateescape") as file:
            return list(paths_in(file, name))
    except OSError as exc:
        raise DigitrecError(f"--files-from {name}: {exc.strerror or exc}") from None


def table_row(result: dict[str, Any], width: int) -> str:
    """Aligned rows, one per line read (top to bottom): the file (on the first row), the
    line's text, and each of its digits with its confidence; ``width``: of the ``printable``
    file names."""
    if result["error"]:
        return f"{printable(result['file']):<{width}}  error: {printable(result['error'])}"
    lines = result["lines"] or [{"text": "(no digits)", "digits": []}]
    rows = []
    for k, line in enumerate(lines):
        digits = "  ".join(
            f"{digit['label']} ({digit['confidence']:.1%})"
            if digit["label"] is not None
            else f"? (best {digit['top'][0][0]}, {digit['confidence']:.1%})"
            for digit in line["digits"]
        )
        name = printable(result["file"]) if k == 0 else ""
        rows.append(f"{name:<{width}}  {line['text']:<12}  {digits}".rstrip())
    return "\n".join(rows)


def printable(text: str) -> str:
    """``text`` (a file name, an error quoting one) safe to show on a terminal: control
    characters (escape sequences, line breaks) and the undecodable bytes of a name as Python
    writes them (``\\x1b``), so that a name cannot move the cursor or recolour the screen."""
    from digitrec.batch.output import written_text

    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in written_text(text))
