"""``geo-mz --help`` and every command's help text are as recorded (tests/data/cli_help.txt).

A change of the command line is deliberate: regenerate the file with
``python -m tests.test_cli_help > tests/data/cli_help.txt`` and say why in the commit.
"""

from __future__ import annotations

from pathlib import Path

import click
from click.testing import CliRunner

from geo_mz.cli import main


def help_texts() -> str:
    """The help of the command and of every subcommand, depth first, in name order."""
    out: list[str] = []

    def walk(cmd: click.Command, path: list[str]) -> None:
        result = CliRunner().invoke(main, [*path, "--help"])
        out.append("=== geo-mz " + " ".join(path))
        out.append(result.output)
        if isinstance(cmd, click.Group):
            for name in sorted(cmd.commands):
                walk(cmd.commands[name], [*path, name])

    walk(main, [])
    return "\n".join(out) + "\n"


def test_help_of_every_command_is_unchanged():
    recorded = (Path(__file__).parent / "data" / "cli_help.txt").read_text(encoding="utf-8")
    assert help_texts() == recorded


if __name__ == "__main__":
    print(help_texts(), end="")
