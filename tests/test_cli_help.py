"""Every option of every command says what it does: walk the real parser and check each help line.

    .venv/bin/pytest tests/test_cli_help.py -q

A new option (or command) added without a help string fails here, so `audiogen CMD --help` never
shows a blank line again.
"""

from __future__ import annotations

import argparse

import pytest

from audiogen.cli import build_parser


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command path, its parser, its subcommand help lines) for the root and every nested subcommand."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(build_parser()))


def test_the_walk_finds_every_command() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"continue", "render", "loops", "batch", "corpus", "tokenize", "train", "codec encode", "codec decode",
            "codec eval", "eval", "export", "bench", "info", "demo", "generate"} <= names


@pytest.mark.parametrize("path,parser", COMMANDS, ids=[" ".join(p) or "audiogen" for p, _ in COMMANDS])
def test_every_argument_has_a_help_line(path: tuple[str, ...], parser: argparse.ArgumentParser) -> None:
    blank = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):  # each subcommand's one-line summary
            listed = {a.dest for a in action._choices_actions if a.help and a.help.strip()}
            blank += [f"subcommand {name}" for name in action.choices if name not in listed]
            continue
        if action.help == argparse.SUPPRESS:
            continue
        if not (action.help and action.help.strip()):
            blank.append("/".join(action.option_strings) or action.metavar or action.dest)
    assert not blank, f"audiogen {' '.join(path)}: no help for {', '.join(blank)}"
    text = parser.format_help()  # every %(default)s and %% in the help lines expands
    assert parser.prog in text


def test_loops_help_names_the_formats_and_defaults() -> None:
    loops = dict(COMMANDS)[("loops",)]
    text = " ".join(loops.format_help().split())
    assert "--format {wav,ogg,flac}" in text and "(default: wav)" in text
    assert "loops.json" in text and "(default: 120.0)" in text
