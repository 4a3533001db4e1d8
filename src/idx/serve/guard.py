"""Who the server answers (ASGI middleware): requests that name this machine in `Host`, and API
requests from no other site than its own pages.

A server on loopback is still reachable from any web page the user opens: a page on
evil.example whose name is made to resolve to 127.0.0.1 (DNS rebinding) reads the answers as
its own, with `Host: evil.example`; any page can send the API a cross-site request. So, as
Jupyter server does (`check_host`, `check_origin`): `Host` must be a loopback name, and an API
request whose `Origin` is another origin, or whose `Sec-Fetch-Site` is cross-site, is refused.
Clients that send neither (curl, scripts) are served.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from idx.serve.limits import send_error

#: Host names of this machine that no other site can take (besides loopback addresses).
LOOPBACK_NAMES = frozenset({"localhost"})
#: The paths that answer with data; the page and its scripts are the same for every visitor.
API_PREFIX = "/api/"


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


class RequestGuard:
    """Refuse (403, JSON) a request whose Host is not a loopback name, and an API request
    from another site."""

    def __init__(self, app: Any):
        self.app = app

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
        await self.app(scope, receive, send)

    def host_refusal(self, host: str | None, count: int = 1) -> str | None:
        if host is None or count != 1:
            return "refused: a request needs one Host header, such as Host: 127.0.0.1:PORT"
        if is_loopback_name(host_name(host)):
            return None
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
