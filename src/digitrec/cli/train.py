"""``digitrec train``: train a registered model into a run directory, or resume one."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

from digitrec.cli.options import (
    add_data_dir_option,
    add_setting_options,
    models_epilog,
    settings_given,
)
from digitrec.errors import DigitrecError
from digitrec.training.config import (
    TrainConfig,
    flag,
    read_settings,
    resolve_config,
    resumable_config,
)
from digitrec.training.models import FINETUNE_RECIPE


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model (default: the classic LeNet-5)",
        description=textwrap.fill(
            "Train a registered model with its recipe; a --params file and flags override it. "
            "--init SOURCE --images DIR fine-tunes a trained model on your own images with the "
            "finetune recipe instead; --real cvl adds CVL's handwriting to the training split. "
            "--resume continues a stopped run with its recorded "
            "settings.",
            79,
        ),
        epilog=models_epilog() + "\n" + finetune_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_setting_options(parser)
    parser.add_argument(
        "--params", type=Path, metavar="FILE", help="JSON or YAML file of settings (.json, .yaml)"
    )
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help="run directory to create (new or empty)"
    )
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue a stopped run")
    parser.add_argument("--tensorboard", action="store_true", help="write TensorBoard logs")
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    add_data_dir_option(parser)
    parser.set_defaults(run=run)


def finetune_epilog(width: int = 79) -> str:
    """The fine-tuning recipe, for ``--help``."""
    recipe = ", ".join(f"{key}={json.dumps(value)}" for key, value in FINETUNE_RECIPE.items())
    return textwrap.fill(
        f"with --init, the finetune recipe replaces the model's: {recipe}.",
        width,
        initial_indent="  ",
        subsequent_indent="  ",
    )


def config_from(args: argparse.Namespace) -> TrainConfig:
    """The run's settings: defaults, the model's recipe, the ``--params`` file, then flags."""
    settings = {**(read_settings(args.params) if args.params else {}), **settings_given(args)}
    return resolve_config(**{key: value for key, value in settings.items() if value is not None})


def check_resume_alone(args: argparse.Namespace) -> None:
    """A resumed run keeps its recorded settings: refuse flags that would be ignored."""
    ignored = [flag(name) for name in settings_given(args)]
    ignored += [option for option in ("--params", "--out") if getattr(args, option[2:])]
    if ignored:
        raise DigitrecError(
            f"--resume continues a run with the settings in its run.json; "
            f"leave out {', '.join(ignored)}"
        )


def check_paths(config: TrainConfig, out: Path | None) -> None:
    """The folders and files a new run names, checked before TensorFlow is loaded: the run
    directory, the model to start from, the layout of the folders of your images, the folder of
    the real handwriting sets."""
    from digitrec.read.image_folders import class_files
    from digitrec.realdigits import real_dir
    from digitrec.training.rundir import check_new_run_dir
    from digitrec.training.saved_models import initial_model_file

    if out:
        check_new_run_dir(out)
    if config.init:
        initial_model_file(config.init)
    for folder in config.images:
        class_files(Path(folder))
    if config.real:
        try:
            real_dir()
        except DigitrecError as exc:
            raise DigitrecError(f"--real {' '.join(config.real)}: {exc}") from None


def run(args: argparse.Namespace) -> int:
    verbose = not args.quiet
    if args.resume:
        check_resume_alone(args)
        resumable_config(args.resume)
    else:
        config = config_from(args)
        check_paths(config, args.out)
    from digitrec.training.train import default_run_dir, resume, train  # before anything is written

    run_dir = args.resume or args.out or default_run_dir(config)
    try:
        if args.resume:
            resume(run_dir, args.data_dir, verbose, args.tensorboard)
        else:
            train(config, run_dir, args.data_dir, verbose, args.tensorboard)
    except KeyboardInterrupt:
        if (run_dir / "run.json").exists():
            print(
                f"\ninterrupted: continue with  digitrec train --resume {run_dir}", file=sys.stderr
            )
        else:
            print("\ninterrupted before the first epoch was saved: nothing kept", file=sys.stderr)
        return 130
    metrics = json.loads((run_dir / "metrics.json").read_text())
    print(
        f"test accuracy {metrics['test_accuracy']:.2%}  (loss {metrics['test_loss']:.4f}, "
        f"trained {metrics['train_seconds']:.1f} s)"
    )
    print(f"run directory {run_dir}")
    print(f"report        {metrics['report']}")
    return 0
