"""MkDocs hooks (mkdocs.yml ``hooks:``) that generate the reference pages at build time, so they
follow the code without a copy to keep up to date.

- ``<!-- cli-reference -->`` in a page becomes the ``--help`` of ``digitrec`` and of each of its
  commands, rendered from ``digitrec.cli``'s argparse parser.
- ``::: digitrec.NAME`` (a public name of ``import digitrec``) becomes ``::: MODULE.NAME``, the
  module it is defined in, for mkdocstrings: the API page names things as users import them.
"""

from __future__ import annotations

import argparse
import os
import re
from typing import Any

CLI_MARKER = "<!-- cli-reference -->"
HELP_WIDTH = "100"  # columns argparse wraps the help at, whatever the terminal
PUBLIC_NAME = re.compile(r"^::: digitrec\.(\w+)$", re.MULTILINE)


def on_page_markdown(markdown: str, **_: Any) -> str:
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    return PUBLIC_NAME.sub(lambda match: f"::: {defining_module(match[1])}.{match[1]}", markdown)


def cli_reference() -> str:
    """Markdown of ``digitrec --help`` and of each command's ``--help``, a section each."""
    from digitrec.cli import build_parser

    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_WIDTH
    try:
        parser = build_parser()
        sections = [help_section("digitrec", parser)]
        for action in parser._subparsers._group_actions:  # argparse keeps the commands here
            if isinstance(action, argparse._SubParsersAction):
                for name, command in action.choices.items():
                    sections.append(help_section(f"digitrec {name}", command))
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous
    return "\n\n".join(sections)


def help_section(title: str, parser: argparse.ArgumentParser) -> str:
    return f"## `{title}`\n\n```text\n{parser.format_help().rstrip()}\n```"


def defining_module(name: str) -> str:
    """The module that defines ``digitrec.NAME``, from the package's table of lazy exports."""
    import digitrec

    if name not in digitrec._EXPORTS:
        raise ValueError(f"digitrec has no public name {name!r}: see digitrec.__all__")
    return digitrec._EXPORTS[name]
