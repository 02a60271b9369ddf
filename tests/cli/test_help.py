"""Every command's --help reads correctly: no raw ``{name}`` placeholders, and every upper-case
name a help text refers to (``OUT/index.html``, ``BIDS/derivatives/...``) is a name the help shows
for an argument or option."""

from __future__ import annotations

import re

import pytest
import typer

from gdsynth.cli.main import app, main


def _commands(group, path=()):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name)


COMMANDS = sorted(_commands(typer.main.get_command(app)))
# The one help text whose braces are literal: fields the user writes in --truth-pattern.
LITERAL_FIELDS = ("{subject}", "{session}", "{prefix}")
# Names used in help texts without a following "/" (command docstrings, option help).
REFERENCED = {
    ("detect",): ["-o, --out OUT"],
    ("evaluate",): ["[OPTIONS] PRED", "-r, --reference REFERENCE", "-o, --out REPORT"],
    ("explain",): ["[OPTIONS] PRED", "-o, --out OUT"],
    ("label",): ["[OPTIONS] BIDS", "-o, --out OUT"],
    ("predict",): ["[OPTIONS] [BIDS]", "-o, --out OUT"],
    ("phantom",): ["[OPTIONS] OUT"],
    ("reader-study", "create"): ["[OPTIONS] PRED", "--bids BIDS"],
    ("reader-study", "serve"): ["[OPTIONS] STUDY"],
    ("review",): ["[OPTIONS] PRED", "-o, --out OUT"],
    ("train",): ["[OPTIONS] BIDS", "-o, --output RUN"],
}


def _help(command: tuple[str, ...], capsys) -> str:
    assert main([*command, "--help"]) == 0
    return capsys.readouterr().out


def test_every_command_is_checked():
    assert len(COMMANDS) >= 13 and ("reader-study", "serve") in COMMANDS


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_has_no_raw_placeholders(command, capsys):
    text = _help(command, capsys)
    usage = text.splitlines()[0]
    assert usage.startswith(f"Usage: gdsynth {' '.join(command)} ")
    assert not re.search(r"[{}]", usage), usage
    body = text
    if command == ("evaluate",):
        assert all(f in text for f in LITERAL_FIELDS) and "literal fields" in text
        for field in LITERAL_FIELDS:
            body = body.replace(field, "")
    assert not re.search(r"\{\w*\}", body), body
    assert "%(" not in body and "{0" not in body
    for expected in REFERENCED.get(command, []):
        assert expected in text, (expected, text)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_names_in_help_paths_are_shown(command, capsys):
    """``NAME/...`` in a help text must name an argument (usage line) or an option's value."""
    text = _help(command, capsys)
    usage = text.splitlines()[0]
    shown = set(re.findall(r"\b([A-Z][A-Z_]+)\b", usage))
    shown |= set(re.findall(r"--[\w-]+ ([A-Z][A-Z_]+)\b", text))
    for name in set(re.findall(r"\b([A-Z][A-Z_]{2,})/(?=[a-z._])", text)):  # not TSV/CSV
        assert name in shown, f"help of {' '.join(command)} refers to {name}/ but shows {shown}"
