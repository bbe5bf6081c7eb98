"""The wiring every front end shares (DESIGN §1): the engine, the delivery worker and
its wake-up, supervised worker processes, clean shutdown.

The CLI and the HTTP service are thin callers of this package; nothing below it knows
it exists.
"""

from postroom.runtime.core import Runtime
from postroom.runtime.delivery import (
    describe_route,
    run_worker,
    run_worker_processes,
    shown_database,
)
from postroom.runtime.logs import say, setup_logging

__all__ = [
    "Runtime",
    "describe_route",
    "run_worker",
    "run_worker_processes",
    "say",
    "setup_logging",
    "shown_database",
]
