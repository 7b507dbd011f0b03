"""``digitrec data``: fetch and verify a dataset, or show where its files are."""

from __future__ import annotations

import argparse

import numpy as np

from digitrec.cli.options import add_data_options
from digitrec.data import load_dataset


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="get, verify and describe a dataset")
    parser.add_argument(
        "action",
        nargs="?",
        choices=["get", "info"],
        default="info",
        help="get: find or download and verify; info: also show files and class counts",
    )
    add_data_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    data = load_dataset(args.dataset, args.data_dir)
    print(f"{data.info.name}: all {len(data.files)} files verified (SHA256 of content)")
    if args.action == "get":
        return 0
    for status in data.files.values():
        print(f"  {status.part:<13} {status.source:<9} {status.path}  sha256 {status.sha256[:16]}…")
    names = data.class_names
    width = max(len("class"), *(len(n) for n in names))
    print(f"  {'class':<{width}}  {'train':>6}  {'test':>6}")
    train_counts = np.bincount(data.train_labels, minlength=len(names))
    test_counts = np.bincount(data.test_labels, minlength=len(names))
    for name, n_train, n_test in zip(names, train_counts, test_counts, strict=True):
        print(f"  {name:<{width}}  {n_train:>6}  {n_test:>6}")
    print(f"  {'total':<{width}}  {len(data.train_labels):>6}  {len(data.test_labels):>6}")
    return 0
