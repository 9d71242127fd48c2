"""What every command shares and that loads nothing heavy: the one-line error, the parser that uses it, and the
last net for what nobody foresaw."""

from __future__ import annotations

import argparse
import os
import sys


class CommandError(Exception):
    """Stops the command with this one-line message (exit code 2: the request itself is wrong)."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        raise CommandError(f"{message} (see `{self.prog} --help`)")


def first_line(exc: BaseException) -> str:
    """The first line of what went wrong (of the driver's error when there is one)."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__


def unexpected(exc: Exception) -> int:
    """One line for the person and exit code 1; the traceback only with FLEETDESK_DEBUG set."""
    if os.environ.get("FLEETDESK_DEBUG"):
        raise exc
    print(f"fleetdesk: unexpected error: {exc.__class__.__name__}: {first_line(exc)} "
          "(run again with FLEETDESK_DEBUG=1 for the details)", file=sys.stderr)
    return 1
