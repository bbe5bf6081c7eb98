"""Console logins: session cookies, CSRF tokens, and a brake on password guessing.

The session cookie is ``HttpOnly``, ``SameSite=Strict`` and, behind TLS, ``Secure``;
the database keeps only its SHA-256. Every form carries the session's CSRF token and
every POST checks it. The login form itself, before any session, checks a
double-submit token. After ``MAX_FAILURES`` failed logins within ``WINDOW`` seconds,
for one username or from one address, further tries wait out the window.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass

from fastapi import Request, Response

from postroom.store.web import SessionInfo, Sessions

SESSION_COOKIE = "postroom_session"
LOGIN_COOKIE = "postroom_login"
MAX_FAILURES = 5
WINDOW = 15 * 60.0
EXTEND_EVERY = 300.0  # a session's expiry slides at most this often (one write)


class LoginRequired(Exception):
    """No valid session: the page answers with a redirect to the login form."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class CsrfRefused(Exception):
    """A POST without the right CSRF token."""


@dataclass(frozen=True, slots=True)
class Admin:
    """The logged-in admin of a request."""

    user_id: int
    username: str
    csrf: str


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )


class ConsoleSessions:
    def __init__(self, sessions: Sessions, *, lifetime: float) -> None:
        self.sessions = sessions
        self.lifetime = lifetime
        self._extended: dict[str, float] = {}

    def admin(self, request: Request) -> Admin:
        """The request's admin, or LoginRequired."""
        cookie = request.cookies.get(SESSION_COOKIE, "")
        found: SessionInfo | None = self.sessions.get(cookie) if cookie else None
        if found is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise LoginRequired(target)
        now = time.monotonic()
        if now - self._extended.get(cookie, 0.0) >= EXTEND_EVERY:
            self._extended[cookie] = now
            self.sessions.extend(cookie, lifetime=self.lifetime)
        return Admin(found.user_id, found.username, found.csrf)

    def start(self, request: Request, response: Response, user_id: int) -> None:
        cookie, _ = self.sessions.create(user_id, lifetime=self.lifetime)
        set_cookie(response, request, SESSION_COOKIE, cookie, int(self.lifetime))
        response.delete_cookie(LOGIN_COOKIE, path="/")

    def end(self, request: Request, response: Response) -> None:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            self.sessions.end(cookie)
            self._extended.pop(cookie, None)
        response.delete_cookie(SESSION_COOKIE, path="/")


def check_csrf(admin: Admin, given: str | None) -> None:
    if not given or not hmac.compare_digest(given, admin.csrf):
        raise CsrfRefused


def login_token(request: Request) -> str:
    """The login form's double-submit token: the cookie's value, or a new one."""
    return request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)


def login_token_ok(request: Request, given: str | None) -> bool:
    cookie = request.cookies.get(LOGIN_COOKIE)
    return bool(cookie and given and hmac.compare_digest(cookie, given))


class LoginThrottle:
    """Failed logins per username and per client address, in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    def wait_time(self, username: str, client: str, *, now: float | None = None) -> float:
        """Seconds until another try is allowed (0: now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            waits = [self._wait(key, now) for key in self._keys(username, client)]
        return max(waits)

    def failed(self, username: str, client: str, *, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            for key in self._keys(username, client):
                self._failures[key].append(now)

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(f"user:{username.lower()}", None)

    def _wait(self, key: str, now: float) -> float:
        times = self._failures.get(key)
        if not times:
            return 0.0
        while times and now - times[0] >= WINDOW:
            times.popleft()
        if len(times) < MAX_FAILURES:
            return 0.0
        return WINDOW - (now - times[0])

    @staticmethod
    def _keys(username: str, client: str) -> tuple[str, str]:
        return f"user:{username.strip().lower()}", f"addr:{client}"
