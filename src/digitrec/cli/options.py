"""Options shared by several subcommands."""

from __future__ import annotations

import argparse

from digitrec.data import DATA_DIR_ENV, DATASETS


def add_data_options(
    parser: argparse.ArgumentParser, dataset_default: str | None = "mnist"
) -> None:
    parser.add_argument(
        "--dataset", choices=sorted(DATASETS), default=dataset_default, help="dataset name"
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help=f"directory holding the IDX files (default: ${DATA_DIR_ENV}, then the user cache)",
    )
