"""Settings: every effective value with its source (secrets masked), editing of the
file's values with ``config set``'s checks, and the Test email form (LabKey's Test
Email Configuration page)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from postroom.diagnostics import run_test_email
from postroom.errors import PostroomError
from postroom.runtime import Runtime
from postroom.service.console.deps import AdminForm, AdminPage
from postroom.service.console.render import page
from postroom.service.console.sessions import Admin
from postroom.service.deps import state_of
from postroom.settings import GLOSSARY

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True, slots=True)
class Row:
    key: str
    shown: str
    source: str
    description: str
    env: str
    secret: bool

    @property
    def editable(self) -> bool:
        """Flags and the environment win over the file: editing would change nothing."""
        return self.source in ("file", "default")


def rows(runtime: Runtime) -> list[Row]:
    config = runtime.config
    return [
        Row(key, config.shown(key), config.sources[key], spec.description, spec.env, spec.secret)
        for key, spec in GLOSSARY.items()
    ]


def _page(
    request: Request,
    admin: Admin,
    runtime: Runtime,
    *,
    status_code: int = 200,
    **context: object,
) -> HTMLResponse:
    return page(
        request,
        "settings.html",
        admin,
        runtime,
        status_code=status_code,
        rows=rows(runtime),
        config_file=runtime.config.home.config_file,
        **context,
    )


@router.get("/console/settings")
def settings_page(
    request: Request,
    admin: AdminPage,
    key: Annotated[str, Query(max_length=100)] = "",
    notice: str | None = None,
) -> HTMLResponse:
    runtime = state_of(request).runtime
    spec = GLOSSARY.get(key)
    value = "" if spec is None or spec.secret else runtime.config.shown(key)
    return _page(
        request,
        admin,
        runtime,
        edit_key=key if spec else "",
        edit_value=value,
        edit_secret=bool(spec and spec.secret),
        notice=notice,
    )


@router.post("/console/settings")
def change_setting(
    request: Request,
    admin: AdminForm,
    key: Annotated[str, Form(max_length=100)] = "",
    value: Annotated[str, Form(max_length=10_000)] = "",
    do: Annotated[str, Form()] = "set",
) -> Response:
    runtime = state_of(request).runtime
    try:
        if do == "unset":
            runtime.update_settings(unset=[key])
            done = f"{key} is back to its default."
        else:
            runtime.update_settings(set_values={key: value})
            done = f"Saved {key}."
    except PostroomError as exc:
        spec = GLOSSARY.get(key)
        return _page(
            request,
            admin,
            runtime,
            status_code=422,
            problem=str(exc),
            edit_key=key,
            edit_value="" if spec is None or spec.secret else value,
            edit_secret=bool(spec and spec.secret),
        )
    if not key.startswith("mail."):
        done += " It applies when postroom starts again."
    return RedirectResponse(f"/console/settings?{urlencode({'notice': done})}", status_code=303)


@router.post("/console/settings/test-email")
def send_test(
    request: Request, admin: AdminForm, to: Annotated[str, Form(max_length=320)] = ""
) -> HTMLResponse:
    runtime = state_of(request).runtime
    try:
        report = run_test_email(runtime.config.settings, to, home=runtime.config.home)
    except PostroomError as exc:
        return _page(request, admin, runtime, status_code=422, problem=str(exc), test_to=to)
    warnings = [p.message for p in runtime.config.warnings()] + list(report.warnings)
    return _page(request, admin, runtime, report=report, report_warnings=warnings, test_to=to)
