"""``/api/v1/test-email``: the step-by-step SMTP diagnosis, as JSON."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from postroom.diagnostics import run_test_email
from postroom.runtime import Runtime
from postroom.service.deps import admin, runtime_of
from postroom.service.models import DiagnosisIn, DiagnosisOut
from postroom.service.tokens import Caller

router = APIRouter(tags=["diagnostics"])


@router.post("/test-email", response_model=DiagnosisOut)
def diagnose(
    body: DiagnosisIn,
    _caller: Annotated[Caller, Depends(admin)],
    runtime: Annotated[Runtime, Depends(runtime_of)],
) -> DiagnosisOut:
    """Walk a real session with the configured SMTP server (resolve, connect, TLS and
    certificate, EHLO, login, MAIL, RCPT, DATA); ``ok`` false names the failed step and
    its fix. Answered 200 either way: the diagnosis is the answer."""
    config = runtime.config
    report = run_test_email(config.settings, body.to, home=config.home)
    warnings = [problem.message for problem in config.warnings()] + list(report.warnings)
    return DiagnosisOut.model_validate({**report.to_json(), "warnings": warnings})
