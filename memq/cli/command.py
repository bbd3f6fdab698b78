"""What every ``memq`` command is: a function of its parsed arguments and settings that
returns the process's exit status."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Final, TypeAlias

from memq.config import Settings

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_USAGE: Final = 2  # a bad argument or setting
EXIT_INTERRUPTED: Final = 130  # Ctrl-C, as shells report SIGINT

Command: TypeAlias = Callable[[argparse.Namespace, Settings], int]
# Where each topic adds its commands' parsers. A string: argparse's class cannot be
# subscripted at run time.
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
