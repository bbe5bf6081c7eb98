"""Console passwords: argon2id hashes (argon2-cffi), checked in constant time.

Only a hash is stored. A login for a user who does not exist, or has no password,
still verifies against a dummy hash, so the time taken tells nothing about accounts.
"""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from postroom.errors import DirectoryError

MIN_LENGTH = 10
MAX_LENGTH = 1024  # argon2 takes any length; a cap keeps a request from costing much

_hasher = PasswordHasher()


@functools.cache
def _dummy() -> str:
    """Made on first use, not at import: a hash costs tens of milliseconds."""
    return _hasher.hash("postroom: no such user, no such password")


def check_password(password: str, *, username: str) -> str:
    """The password if it is acceptable, else a DirectoryError naming the rule."""
    if len(password) < MIN_LENGTH:
        raise DirectoryError(
            f"the password is {len(password)} characters long; use at least {MIN_LENGTH} "
            "(a few words make a good one)"
        )
    if len(password) > MAX_LENGTH:
        raise DirectoryError(f"the password is longer than {MAX_LENGTH} characters")
    if password.strip().lower() == username.lower():
        raise DirectoryError("the password is the username; choose another")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored`` (None: no password, always False)."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _hasher.verify(stored or _dummy(), password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """Whether the hash was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(stored)
