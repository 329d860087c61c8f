"""Loggers that cost nothing to import: `logging` is loaded only by whoever configures it.

If nothing has imported `logging`, no handler can exist, so a debug record would go nowhere:
skipping it loses nothing and saves every `isol8 run` the ~8 ms the import costs. Warnings
always go through `logging` (its last-resort handler prints them).
"""

from __future__ import annotations

import sys


class Logger:
    def __init__(self, name: str) -> None:
        self.name = name

    def debug(self, msg: str, *args: object) -> None:
        if "logging" in sys.modules:
            sys.modules["logging"].getLogger(self.name).debug(msg, *args)

    def warning(self, msg: str, *args: object) -> None:
        import logging

        logging.getLogger(self.name).warning(msg, *args)


def get_logger(name: str) -> Logger:
    return Logger(name)
