"""Log lines on stderr, for every long-running command (worker, catch, serve)."""

from __future__ import annotations

import logging
import sys


def setup_logging() -> None:
    """Log lines to stderr; the log transport writes whole messages here too."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("postroom")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def say(line: str) -> None:
    """One line for the person who started the command (stderr, flushed at once)."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
