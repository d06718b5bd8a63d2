"""What keeps a served model answering when clients misbehave: a time limit on the request
headers (slow-loris connections are closed), a time limit between the body's chunks, an upload
cap enforced while the body arrives (413 before it is read past the cap), and a cap on open
connections (uvicorn's ``limit_concurrency``: 503 beyond it)."""

from __future__ import annotations

import asyncio
import json

import h11
from fastapi import HTTPException
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 30.0
MAX_CONNECTIONS = 64
MULTIPART_ALLOWANCE = 64 * 1024  # form boundaries and part headers around the upload itself


def header_timeout_protocol(seconds: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol, closing a connection whose request headers are not complete
    ``seconds`` after it opened or after its previous response (uvicorn itself waits forever
    for the first request's headers, and its keep-alive timer stops at the next first byte)."""

    class HeaderTimeout(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(seconds, self._too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _too_slow(self) -> None:
            self._header_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()  # the headers never finished: nothing to answer

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state is not h11.IDLE:  # a request's headers are in
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderTimeout


async def _answer(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"connection", b"close"),
               (b"content-length", str(len(body)).encode())]  # fmt: skip
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestLimits:
    """ASGI middleware: a declared Content-Length over the cap is answered 413 before any of
    the body is read; an undeclared (chunked) body is counted as it arrives and refused at
    the cap; a body chunk that takes longer than ``body_timeout`` is answered 408. Added
    inside the app (``app.add_middleware``), so its refusals are the app's own JSON answers."""

    def __init__(self, app, max_upload_mb: float, body_timeout: float = BODY_TIMEOUT_S):
        self.app, self.max_upload_mb, self.body_timeout = app, max_upload_mb, float(body_timeout)
        self.max_body = int(max_upload_mb * 1024 * 1024) + MULTIPART_ALLOWANCE

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        over = f"upload over the {self.max_upload_mb:g} MB limit"
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_body
            except ValueError:
                return await _answer(send, 400, "Content-Length is not a number")
            if too_big:
                return await _answer(send, 413, over)
        received = 0

        async def limited_receive():
            nonlocal received
            try:
                message = await asyncio.wait_for(receive(), self.body_timeout)
            except TimeoutError:
                raise HTTPException(408, f"no body data for {self.body_timeout:g} s") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise HTTPException(413, over)
            return message

        # Raised inside the app's body parsing, an HTTPException becomes its JSON answer (FastAPI
        # re-raises it as it is; Starlette's exception middleware writes the response)
        await self.app(scope, limited_receive, send)
