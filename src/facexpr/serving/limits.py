"""Request-body size limit, enforced while the body streams in (before any parsing or decoding)."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facexpr.serving.errors import PayloadTooLarge


class BodySizeLimit:
    """ASGI middleware: 413 for a declared ``Content-Length`` above ``max_bytes``, and ``PayloadTooLarge`` raised
    into the endpoint as soon as a streamed (chunked) body passes it, so nothing larger is ever buffered.
    ``shown_limit`` is the upload limit named in the error (``max_bytes`` leaves room for multipart framing)."""

    def __init__(self, app: ASGIApp, max_bytes: int, shown_limit: int | None = None) -> None:
        self.app, self.max_bytes = app, max_bytes
        self.shown_limit = shown_limit or max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise PayloadTooLarge(self.shown_limit)
            return message

        await self.app(scope, limited_receive, send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"error": str(PayloadTooLarge(self.shown_limit))}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
