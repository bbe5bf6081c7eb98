"""The gate in front of ``/api/v1``: token, rate, body and Idempotency-Key.

Pure ASGI, so that it runs before a route reads anything: a request without a valid
``Authorization: Bearer`` token gets 401 (a token in the URL is refused: URLs end up
in logs and browser history), one past its token's rate 429 with ``Retry-After``, a
body over the cap 413, a body that is not JSON 415. A POST with an
``Idempotency-Key`` is answered once: the first successful answer is kept and given
again for the same key and body; the same key with another body is 409. Answers
that were errors are not kept (they changed nothing), so a corrected retry works.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from anyio import to_thread
from starlette.datastructures import Headers, QueryParams
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from postroom.service.errors import error_response
from postroom.service.tokens import RateLimiter, TokenChecker
from postroom.store.web import IdempotentAnswers, RememberedAnswer

API_PREFIX = "/api/v1/"
#: Query parameters that look like a token: refused, never read.
TOKEN_PARAMETERS = {"token", "access_token", "api_key", "apikey", "key", "auth", "bearer"}
MAX_KEY = 255
WITH_BODY = {"POST", "PUT", "PATCH"}


#: An answer given by the gate itself (an ASGI app).
Answer = Callable[[Scope, Receive, Send], Awaitable[None]]


class _TooLarge(Exception):
    pass


class ApiGate:
    def __init__(
        self,
        app: ASGIApp,
        *,
        checker: TokenChecker,
        limiter: RateLimiter,
        answers: IdempotentAnswers,
        max_body: int,
    ) -> None:
        self.app = app
        self.checker = checker
        self.limiter = limiter
        self.answers = answers
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope["path"]).startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        refusal = await self._admit(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        if scope["method"] not in WITH_BODY:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        try:
            body = await self._body(headers, receive)
        except _TooLarge:
            await _too_large(self.max_body)(scope, receive, send)
            return
        if body.strip() and not _is_json(headers.get("content-type", "")):
            await error_response(
                415, "not_json", "send the body as JSON with Content-Type: application/json"
            )(scope, receive, send)
            return
        key = headers.get("idempotency-key")
        if scope["method"] == "POST" and key is not None:
            await self._once(scope, receive, send, body, key)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _admit(self, scope: Scope) -> Answer | None:
        """None when the request may go on (its caller now in the scope), else the answer."""
        query = QueryParams(scope.get("query_string", b"").decode("latin-1"))
        if TOKEN_PARAMETERS & {name.lower() for name in query}:
            return error_response(
                401,
                "token_in_url",
                "a token in the URL is refused (URLs are logged); "
                "send it as the header Authorization: Bearer TOKEN",
                headers={"WWW-Authenticate": "Bearer"},
            )
        kind, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
        token = token.strip()
        if kind.lower() != "bearer" or not token:
            return error_response(
                401,
                "unauthenticated",
                "this needs a token: send Authorization: Bearer TOKEN "
                "(make one with `postroom token create NAME`)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        # The database only now and then: a token not seen for a few seconds, or a
        # minute's last_used_at.
        known, caller = self.checker.remembered(token)
        if not known:
            caller = await to_thread.run_sync(self.checker.check, token)
        elif caller is not None and self.checker.due_for_touch(caller):
            await to_thread.run_sync(self.checker.tokens.touch, caller.token_id)
        if caller is None:
            return error_response(
                401,
                "bad_token",
                "the token is unknown or revoked; see `postroom token list`",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        wait = self.limiter.wait_time(caller.token_id)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            return error_response(
                429,
                "rate_limited",
                f"token {caller.name} is over web.rate_limit; retry in {seconds} s",
                headers={"Retry-After": str(seconds)},
            )
        state: MutableMapping[str, Any] = scope.setdefault("state", {})
        state["caller"] = caller
        return None

    async def _body(self, headers: Headers, receive: Receive) -> bytes:
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise _TooLarge
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _once(
        self, scope: Scope, receive: Receive, send: Send, body: bytes, key: str
    ) -> None:
        if not key or len(key) > MAX_KEY or not key.isprintable():
            await error_response(
                400,
                "bad_idempotency_key",
                f"Idempotency-Key must be 1 to {MAX_KEY} printable characters (a UUID is good)",
                field="Idempotency-Key",
            )(scope, receive, send)
            return
        caller = scope["state"]["caller"]
        owner = str(caller.token_id)
        digest = _request_hash(scope, body)
        known = await to_thread.run_sync(self.answers.get, owner, key)
        if known is not None:
            await _answer_again(known, digest)(scope, receive, send)
            return
        # The answer is kept before the client has it: a repeat sent the moment the
        # first answer arrives finds it.
        start: Message | None = None
        parts: list[bytes] = []

        async def keep(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            parts.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            assert start is not None
            status = int(start["status"])
            if 200 <= status < 300:
                content_type = Headers(raw=start.get("headers", [])).get(
                    "content-type", "application/json"
                )
                answer = RememberedAnswer(digest, status, content_type, b"".join(parts))
                kept = await to_thread.run_sync(self.answers.remember, owner, key, answer)
                if kept != answer:  # a twin request with the key got there first
                    await _answer_again(kept, digest)(scope, receive, send)
                    return
            await send(start)
            await send({"type": "http.response.body", "body": b"".join(parts)})

        await self.app(scope, _replay(body, receive), keep)


def _answer_again(known: RememberedAnswer, digest: str) -> Answer:
    if known.request_hash != digest:
        return error_response(
            409,
            "idempotency_key_reused",
            "this Idempotency-Key was used with another request; use a new key per request",
            field="Idempotency-Key",
        )

    async def replay(_scope: Scope, _receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": known.status,
                "headers": [
                    (b"content-type", known.content_type.encode("latin-1")),
                    (b"content-length", str(len(known.body)).encode()),
                    (b"idempotent-replayed", b"true"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": known.body})

    return replay


def _request_hash(scope: Scope, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (scope["method"].encode(), scope["path"].encode(), scope.get("query_string", b"")):
        digest.update(part + b"\0")
    digest.update(body)
    return digest.hexdigest()


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _too_large(limit: int) -> Answer:
    return error_response(
        413,
        "too_large",
        f"the request body is over {limit:,} bytes (mail.max_size plus room for base64 and "
        "JSON); send a smaller message or raise mail.max_size",
    )


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again
