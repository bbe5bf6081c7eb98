"""What routes ask for: the service's state, the runtime, and the caller the gate let in."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from postroom.runtime import Runtime
from postroom.service.console.sessions import ConsoleSessions, LoginThrottle
from postroom.service.errors import ApiError
from postroom.service.intake import Intake
from postroom.service.metrics import Metrics
from postroom.service.tokens import Caller, RateLimiter, TokenChecker

# Only for the OpenAPI description (the gate checks the token before any route runs).
bearer = HTTPBearer(auto_error=False, description="postroom token create NAME [--scope]")


@dataclass
class ServiceState:
    """Everything the app's routes share, on ``app.state.postroom``."""

    runtime: Runtime
    tokens: TokenChecker
    limiter: RateLimiter
    metrics: Metrics
    console: ConsoleSessions
    throttle: LoginThrottle
    intake: Intake


# Dependencies are ``async def``: they only read the request, and a plain ``def`` would
# cost each request a trip through the thread pool per dependency.


def state_of(request: Request) -> ServiceState:
    found = request.app.state.postroom
    assert isinstance(found, ServiceState)
    return found


async def service_of(request: Request) -> ServiceState:
    return state_of(request)


async def runtime_of(request: Request) -> Runtime:
    return state_of(request).runtime


async def sender(request: Request, _: object = Depends(bearer)) -> Caller:
    """Any valid token: send (enqueue) and admin scopes alike."""
    caller = getattr(request.state, "caller", None)
    if not isinstance(caller, Caller):  # the gate answers 401 first; never reached
        raise ApiError(401, "unauthenticated", "this needs a token")
    return caller


async def admin(caller: Caller = Depends(sender)) -> Caller:
    """A token with the admin scope."""
    if not caller.admin:
        raise ApiError(
            403,
            "forbidden",
            f"token {caller.name} has the send scope; this needs an admin token "
            "(`postroom token create NAME --scope admin`)",
        )
    return caller
