"""The two things every command shares and that load nothing heavy: the one-line error and the parser that uses it."""

from __future__ import annotations

import argparse


class CommandError(Exception):
    """Stops the command with this one-line message (exit code 2: the request itself is wrong)."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        raise CommandError(f"{message} (see `{self.prog} --help`)")
