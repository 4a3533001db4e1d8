"""Who the server answers (ASGI middleware): requests that name this machine in `Host`, or
carry the token; and API requests from no other site than its own pages.

A server on loopback is still reachable from any web page the user opens: a page on
evil.example whose name is made to resolve to 127.0.0.1 (DNS rebinding) reads the answers as
its own, with `Host: evil.example`; any page can send the API a cross-site request. So, as
Jupyter server does (`check_host`, `check_origin`, its token): without a token `Host` must be a
loopback name; an API request whose `Origin` is another origin, or whose `Sec-Fetch-Site` is
cross-site, is refused (clients that send neither, such as curl, are served); and with a token
(always beyond loopback) every request must carry it: `Authorization: Bearer TOKEN`, or
`?token=TOKEN` in the URL, which sets a cookie (HttpOnly, SameSite=Strict) that the page's own
requests then carry. A page elsewhere knows no token, and its requests carry no such cookie.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.requests import cookie_parser

from idx.serve.limits import send_error

#: Host names of this machine that no other site can take (besides loopback addresses).
LOOPBACK_NAMES = frozenset({"localhost"})
#: The paths that answer with data; the page and its scripts are the same for every visitor.
API_PREFIX = "/api/"
TOKEN_NEEDED = (
    "this server asks for its token (idx serve printed it at start, with the URL): open "
    "http://HOST:PORT/?token=TOKEN once in the browser, or send the header "
    "Authorization: Bearer TOKEN"
)
WRONG_TOKEN = (
    "wrong token: give the one idx serve printed at start (without --token or IDX_SERVE_TOKEN "
    "each start makes a new one)"
)


def host_name(host: str) -> str:
    """The name in a Host header, without the port: 'localhost:8765' -> 'localhost',
    '[::1]:8765' -> '::1'."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if ":" in host else host


def is_loopback_name(name: str) -> bool:
    """Whether a host name or address can only mean this machine (127.0.0.0/8, ::1,
    localhost); names are not looked up: that is what a rebinding attacker controls."""
    if name.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _shown(text: str, most: int = 100) -> str:
    return text if len(text) <= most else text[:most] + "..."


def cookie_name(scope: dict) -> str:
    """The token's cookie, one per port: a browser sends a host's cookies to all its ports."""
    server = scope.get("server")
    return f"idx_token_{server[1]}" if server and server[1] else "idx_token"


class RequestGuard:
    """Refuse (403, JSON) a request whose Host is not a loopback name (unless a token is
    asked for) and an API request from another site; with a token, answer only requests that
    carry it (401 without, 403 with a wrong one)."""

    def __init__(self, app: Any, token: str | None = None):
        self.app, self.token = app, token

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name: value.decode("latin-1") for name, value in scope["headers"]}
        hosts = [value for name, value in scope["headers"] if name == b"host"]
        refusal = self.host_refusal(headers.get(b"host"), len(hosts))
        if refusal is None and scope["path"].startswith(API_PREFIX):
            refusal = self.cross_site_refusal(headers)
        if refusal is not None:
            await send_error(send, 403, refusal)
            return
        if self.token is None:
            await self.app(scope, receive, send)
            return
        presented, from_url = self.presented(scope, headers)
        if not presented:
            challenge = [(b"www-authenticate", b'Bearer realm="idx serve"')]
            await send_error(send, 401, TOKEN_NEEDED, challenge)
        elif not any(self.is_token(t) for t in presented):
            await send_error(send, 403, WRONG_TOKEN)
        elif from_url is not None and self.is_token(from_url):
            await self.app(scope, receive, self.setting_cookie(send, cookie_name(scope)))
        else:
            await self.app(scope, receive, send)

    def presented(self, scope: dict, headers: dict[bytes, str]) -> tuple[list[str], str | None]:
        """(every token the request carries, the one in its URL or None)."""
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        from_url = query.get("token", [None])[-1]
        scheme, _, bearer = headers.get(b"authorization", "").partition(" ")
        from_cookie = cookie_parser(headers.get(b"cookie", "")).get(cookie_name(scope))
        found = [from_url, bearer.strip() if scheme.lower() == "bearer" else None, from_cookie]
        return [t for t in found if t], from_url

    def is_token(self, text: str) -> bool:
        assert self.token is not None
        return hmac.compare_digest(text.encode(), self.token.encode())

    def setting_cookie(self, send: Any, name: str) -> Any:
        """`send` that adds the token's cookie to the answer: the page's own requests (API,
        thumbnails) then carry it; no script reads it, and no other site's requests carry it."""
        assert self.token is not None
        cookie = f"{name}={self.token}; HttpOnly; SameSite=Strict; Path=/".encode()

        async def with_cookie(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"set-cookie", cookie)]
                message = {**message, "headers": headers}
            await send(message)

        return with_cookie

    def host_refusal(self, host: str | None, count: int = 1) -> str | None:
        if host is None or count != 1:
            return "refused: a request needs one Host header, such as Host: 127.0.0.1:PORT"
        if self.token is not None or is_loopback_name(host_name(host)):
            return None  # a rebinding page knows no token
        return (
            f"refused: the Host header {_shown(host)!r} does not name this machine, as a web "
            "page that had its name point to 127.0.0.1 (DNS rebinding) would send; use "
            "localhost, 127.0.0.1 or [::1] (or serve beyond loopback with --host, which takes "
            "a token)"
        )

    def cross_site_refusal(self, headers: dict[bytes, str]) -> str | None:
        host = headers.get(b"host", "")
        origin = headers.get(b"origin")
        if origin is not None and urlsplit(origin).netloc.lower() != host.lower():
            return (
                f"refused: a cross-site request (Origin {_shown(origin)!r}, not this server "
                f"{_shown(host)!r}); the API answers its own page and clients that send no "
                "Origin (curl, scripts)"
            )
        if headers.get(b"sec-fetch-site", "").lower() == "cross-site":
            return (
                "refused: a cross-site request (Sec-Fetch-Site: cross-site), sent by another "
                "site's page; the API answers its own page and clients such as curl"
            )
        return None
