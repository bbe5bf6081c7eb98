"""The directory: users and groups, kept by postroom or pushed by the host application.

``Postroom().users`` is a :class:`Users`; ``postroom user ...`` and ``postroom group
...`` are its command line.
"""

from postroom.store.directory_queries import Group, User
from postroom.users.directory import ImportReport, Users

__all__ = ["Group", "ImportReport", "User", "Users"]
