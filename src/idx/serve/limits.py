"""ASGI middleware that guards the server: a cap on request bodies, and headers that keep the
page's scripts, styles, pictures and requests on this server."""

from __future__ import annotations

import json
from typing import Any

#: The page loads nothing from elsewhere (it works offline) and may not: scripts, styles,
#: pictures and requests all come from this server; dropped images are read as blob: URLs.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


class BodyTooLarge(Exception):
    """A request body above the server's upload limit."""


def _too_large_message(limit: int) -> str:
    return (
        f"the request body is larger than the upload limit of {limit:,} bytes; send a smaller "
        "image (IDX_MAX_UPLOAD sets the limit)"
    )


class BodyLimit:
    """Refuse request bodies above `max_bytes`: at once when Content-Length says so, else
    (chunked uploads) as soon as more has arrived, raising BodyTooLarge in the reader."""

    def __init__(self, app: Any, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await send_error(send, 413, _too_large_message(self.max_bytes))
            return
        seen = 0

        async def limited() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(_too_large_message(self.max_bytes))
            return message

        await self.app(scope, limited, send)


async def send_error(
    send: Any, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Answer a request from middleware, as the app answers errors: JSON {"error": message}."""
    body = json.dumps({"error": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    """Content-Security-Policy, nosniff and no referrer on every response that does not set
    its own (a served file has a stricter policy)."""

    HEADERS = [
        (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
    ]

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                have = {name.lower() for name, _ in headers}
                extra = [(name, value) for name, value in self.HEADERS if name not in have]
                message = {**message, "headers": [*headers, *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)
