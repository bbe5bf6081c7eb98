"""``/api/v1/captured``: the mail record (what the capture server and recording mode kept)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from postroom.runtime import Runtime
from postroom.service.deps import admin, runtime_of
from postroom.service.errors import ApiError
from postroom.service.models import CapturedDetail, CapturedSummary, Cleared
from postroom.service.tokens import Caller
from postroom.store.capture import CaptureStore
from postroom.store.capture_queries import get_captured, list_captured

router = APIRouter(tags=["mail record"])


@router.get("/captured", response_model=list[CapturedSummary])
def list_record(
    _caller: Annotated[Caller, Depends(admin)],
    runtime: Annotated[Runtime, Depends(runtime_of)],
    to: Annotated[
        str | None,
        Query(max_length=320, description="An envelope recipient: whole address, or a part."),
    ] = None,
    subject: Annotated[str | None, Query(max_length=200)] = None,
    after: Annotated[
        int | None, Query(ge=0, le=2**62, description="Only ids greater than this.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[CapturedSummary]:
    """Captured messages, newest first."""
    found = list_captured(
        runtime.postroom.engine, to=to, subject=subject, after_id=after, limit=limit
    )
    return [CapturedSummary.model_validate(item.to_json()) for item in found]


@router.get("/captured/{captured}", response_model=CapturedDetail)
def get_record(
    captured: Annotated[int, Path(ge=1, le=2**62)],
    _caller: Annotated[Caller, Depends(admin)],
    runtime: Annotated[Runtime, Depends(runtime_of)],
) -> CapturedDetail:
    """One captured message: envelope, headers, text, HTML and the raw bytes."""
    detail = get_captured(runtime.postroom.engine, captured)
    if detail is None:
        raise ApiError(404, "not_found", f"no captured message {captured}")
    return CapturedDetail.model_validate(detail.to_json())


@router.delete("/captured", response_model=Cleared)
def clear_record(
    _caller: Annotated[Caller, Depends(admin)],
    runtime: Annotated[Runtime, Depends(runtime_of)],
) -> Cleared:
    """Delete every captured message."""
    return Cleared(deleted=CaptureStore(runtime.postroom.engine).clear())
