"""What console pages ask for: the logged-in admin, and the CSRF check of a form."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Form, Request

from postroom.service.console.sessions import Admin, check_csrf
from postroom.service.deps import state_of


def console_admin(request: Request) -> Admin:
    """The admin logged in, else LoginRequired (a redirect to the login form)."""
    return state_of(request).console.admin(request)


def form_admin(
    admin: Annotated[Admin, Depends(console_admin)], csrf: Annotated[str, Form()] = ""
) -> Admin:
    """The admin, for a POST whose form carries the session's CSRF token."""
    check_csrf(admin, csrf)
    return admin


AdminPage = Annotated[Admin, Depends(console_admin)]
AdminForm = Annotated[Admin, Depends(form_admin)]
