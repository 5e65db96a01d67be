"""docs/cli.md is what the parsers say: regenerate it with `make docs` when a command changes."""
from __future__ import annotations

import argparse
from pathlib import Path

from montage.cli import build_parser
from montage.cli.reference import cli_markdown

ROOT = Path(__file__).resolve().parent.parent


def test_cli_reference_matches_the_parsers():
    written = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert written == cli_markdown(), "docs/cli.md is stale: run `make docs` and commit it"


def test_every_command_and_option_is_in_the_reference():
    text = cli_markdown()

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}" in text, f"{prefix}: {option} missing from the reference"
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    assert f"`montage {(prefix + ' ' + name).strip()}`" in text
                    walk(sub, f"{prefix} {name}".strip())
    walk(build_parser(), "")


def test_a_changed_parser_is_noticed():
    parser = build_parser()
    before = cli_markdown(parser)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub.choices["make"].add_argument("--brand-new", help="an option the reference has not seen")
    after = cli_markdown(parser)
    assert before != after and "`--brand-new BRAND_NEW`" in after
