"""Admin broadcast: one message per selected user, as a durable, resumable job.

``Postroom().broadcasts`` is a :class:`Broadcasts`; ``postroom admin email`` and
``postroom broadcast ...`` are its command line.
"""

from postroom.broadcast.jobs import BroadcastReport, Broadcasts
from postroom.broadcast.request import BroadcastRequest

__all__ = ["BroadcastReport", "BroadcastRequest", "Broadcasts"]
