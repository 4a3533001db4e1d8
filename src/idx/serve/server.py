"""Listen on a socket and answer with the app, through uvicorn, until interrupted (Ctrl-C)."""

from __future__ import annotations

import copy
import errno
import ipaddress
import re
import secrets
import socket
from collections.abc import Callable
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from idx.errors import IdxError, UsageError
from idx.serve.app import create_app
from idx.serve.session import Session


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address) is this machine only."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return False
    return all(ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos)


#: What a token may hold: it travels in a URL, a header and a cookie (token_urlsafe's alphabet).
TOKEN_CHARACTERS = re.compile(r"[A-Za-z0-9._~-]+")


def server_token(host: str, given: str | None) -> str | None:
    """The token every request must carry: the one given (--token, IDX_SERVE_TOKEN); beyond
    loopback, where others can connect, a new one when none is given; on loopback, none."""
    if given is not None:
        if not TOKEN_CHARACTERS.fullmatch(given):
            raise UsageError(
                "a token (--token, IDX_SERVE_TOKEN) may hold only letters, digits and ._~- (it "
                "travels in a URL, a header and a cookie); leave it out to have one made"
            )
        return given
    return None if is_loopback(host) else secrets.token_urlsafe(32)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free port)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise UsageError(
            f"cannot listen on host {host!r}: {exc.strerror}; give an address such as 127.0.0.1"
        ) from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise IdxError(
                f"port {port} on {host} is in use (another idx serve?); choose another with "
                "--port, or --port 0 for any free one"
            ) from None
        raise IdxError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def _logging() -> dict[str, Any]:
    """uvicorn's logging with every line on stderr (stdout carries only what idx prints), in
    idx's form: its warnings and errors as `warning: ...` (not its INFO start-up lines, which
    idx's own `serving ...` line replaces), each request as `127.0.0.1:PORT "GET / HTTP/1.1"
    200` (none with -q)."""
    settings = copy.deepcopy(LOGGING_CONFIG)
    for handler in settings["handlers"].values():
        handler["stream"] = "ext://sys.stderr"
    settings["formatters"]["default"] = {"()": "idx.progress.LogLines"}
    settings["formatters"]["access"] = {
        "()": "uvicorn.logging.AccessFormatter",
        "fmt": '%(client_addr)s "%(request_line)s" %(status_code)s',
        "use_colors": False,
    }
    settings["loggers"]["uvicorn"]["level"] = "WARNING"
    settings["loggers"]["uvicorn.error"] = {"level": "WARNING"}
    settings["loggers"]["uvicorn.access"]["level"] = "INFO"
    return settings


def serve(
    session: Session,
    host: str,
    port: int,
    *,
    token: str | None = None,
    access_log: bool = True,
    on_ready: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Answer on host:port until interrupted. `on_ready(info)` is called once the socket
    listens, with the url (with ?token= when requests need one: server_token), host, port,
    token, and the session's summary."""
    token = server_token(host, token)
    sock = bind(host, port)
    actual = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    query = f"?token={token}" if token else ""
    info = {"url": f"http://{shown}:{actual}/{query}", "host": host, "port": actual}
    info |= session.summary() | {"loopback_only": is_loopback(host), "token": token}
    config = uvicorn.Config(
        create_app(session, token=token),
        log_config=_logging(),
        log_level=None,  # the levels are _logging()'s
        access_log=access_log,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    if on_ready is not None:
        on_ready(info)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
