"""The wiring every front end shares (DESIGN §1): the engine, the delivery worker and
its wake-up, supervised worker processes, clean shutdown.

The CLI and the HTTP service are thin callers of this package; nothing below it knows
it exists.
"""

from typing import TYPE_CHECKING

from postroom._lazy import lazy_exports

if TYPE_CHECKING:
    from postroom.runtime.core import Runtime
    from postroom.runtime.delivery import (
        describe_route,
        run_worker,
        run_worker_processes,
        shown_database,
    )
    from postroom.runtime.logs import say, setup_logging

# Imported on first use: `postroom config` needs runtime.settings, not the worker.
__getattr__ = lazy_exports(
    __name__,
    {
        "Runtime": "postroom.runtime.core",
        "describe_route": "postroom.runtime.delivery",
        "run_worker": "postroom.runtime.delivery",
        "run_worker_processes": "postroom.runtime.delivery",
        "shown_database": "postroom.runtime.delivery",
        "say": "postroom.runtime.logs",
        "setup_logging": "postroom.runtime.logs",
    },
)

__all__ = [
    "Runtime",
    "describe_route",
    "run_worker",
    "run_worker_processes",
    "say",
    "setup_logging",
    "shown_database",
]
