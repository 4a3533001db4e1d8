"""The HTTP API and the web app over one Session (Starlette).

Read-only: every route reads. Errors are JSON `{"error": message}` with a 4xx status for what
the request got wrong and 5xx for what failed here. Only indexed files are served, by id.
"""

from __future__ import annotations

import gzip
import json
import logging
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from idx import config
from idx.errors import IdxError, NotFoundError, UsageError
from idx.jsonable import to_jsonable
from idx.ops import browse, leakage, search
from idx.serve.guard import RequestGuard
from idx.serve.limits import BodyLimit, BodyTooLarge, SecurityHeaders
from idx.serve.session import Session

log = logging.getLogger(__name__)
STATIC = resources.files("idx.serve") / "static"
#: The largest image id (DuckDB BIGINT): anything above is no image.
MAX_ID = 2**63 - 1
FILTERS = ("where", "label", "cluster", "folder")
#: An indexed file is shown, never run: should a browser take it for a page (a picture that is
#: also HTML, opened on its own), it gets no scripts, no origin of ours and nothing to load.
FILE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; sandbox"


def json_response(value: Any, status: int = 200) -> Response:
    return Response(json.dumps(to_jsonable(value)), status, media_type="application/json")


def error_response(status: int, message: str) -> Response:
    return json_response({"error": message}, status)


async def _idx_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, IdxError)
    return error_response(exc.http_status, str(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    path = _shown(request.url.path, 200)
    headers = exc.headers or {}
    if exc.status_code == 404:
        what = "API path" if path.startswith("/api/") else "page"
        message = f"no such {what}: {path}"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {path}; use {headers.get('Allow')}"
    else:
        message = str(exc.detail)
    response = error_response(exc.status_code, message)
    response.headers.update(headers)
    return response


async def _too_large(request: Request, exc: Exception) -> Response:
    return error_response(413, str(exc))


async def _internal(request: Request, exc: Exception) -> Response:
    log.exception("%s %s failed", request.method, request.url.path)
    return error_response(500, f"internal error: {type(exc).__name__}: {exc}")


# -- arguments ------------------------------------------------------------------------------


def _int(params: Any, name: str, default: int | None, low: int, high: int) -> int | None:
    text = params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise UsageError(
            f"{name} must be a whole number from {low} to {high}, not {_shown(text)!r}"
        )
    return value


def _shown(text: str, most: int = 40) -> str:
    """`text` cut to `most` characters: an error names the value, not 5,000 digits of it."""
    return text if len(text) <= most else f"{text[:most]}... ({len(text):,} characters)"


def _k(params: Any) -> int:
    k = _int(params, "k", search.DEFAULT_K, 1, config.SERVE_MAX_K)
    assert k is not None
    return k


def _filters(session: Session, params: Any) -> dict[str, Any]:
    """The filter of a search: label, cluster and folder as they are; with `where` (people's
    SQL) the ids it keeps, found by the SQL process, so that SQL never runs in the server's
    own connection and a slow `where` holds up only its own request."""
    found: dict[str, Any] = {name: params.get(name) or None for name in FILTERS}
    found["cluster"] = _int(params, "cluster", None, 0, 2**31 - 1)
    if found["where"] is None:
        return found
    return {"among": session.sql.matching_ids(**found)}


def _image_id(request: Request) -> int:
    """The path's id. Checked here, not by Starlette's `{id:int}`, whose int() of a
    5,000-digit id raises in the router (a 500 with a traceback) instead of a 404."""
    text = request.path_params["id"]
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_ID)):
        raise NotFoundError(f"no image with id {_shown(text)!r}")
    image_id = int(text)
    if image_id > MAX_ID:
        raise NotFoundError(f"no image with id {image_id}")
    return image_id


def _hits(hits: list[search.Hit]) -> Response:
    return json_response([h.as_dict() for h in hits])


# -- routes ---------------------------------------------------------------------------------


class Routes:
    """The answers over one session, one method a route (Starlette runs the plain ones in its
    thread pool)."""

    def __init__(self, session: Session):
        self.session = session

    def status(self, request: Request) -> Response:
        return json_response(self.session.run(lambda index: index.status()))

    def search_get(self, request: Request) -> Response:
        params = request.query_params
        k, filters = _k(params), _filters(self.session, params)
        text, image_id = params.get("text"), _int(params, "id", None, 0, MAX_ID)
        if (text is None) == (image_id is None):
            raise UsageError(
                "give text=WORDS or id=N (or POST an image file in the multipart field `image`)"
            )
        query = {"text": text} if text is not None else {"id": image_id}
        return _hits(self.session.run(lambda index: search.search(index, k=k, **query, **filters)))

    async def search_post(self, request: Request) -> Response:
        form = await request.form(max_files=1, max_fields=20)
        upload = form.get("image")
        if not isinstance(upload, UploadFile):
            raise UsageError("POST /api/search takes an image file in the multipart field `image`")
        params = {**request.query_params, **{k: v for k, v in form.items() if isinstance(v, str)}}
        k = _k(params)
        filters = await run_in_threadpool(_filters, self.session, params)
        data = await upload.read()
        name = f"the uploaded image {upload.filename!r}" if upload.filename else "the upload"

        def work(index: Any) -> list[search.Hit]:
            vector = search.image_data_vector(index, data, name)
            return search.search(index, vector=vector[0], k=k, **filters)

        return _hits(await run_in_threadpool(self.session.run, work))

    async def search_any(self, request: Request) -> Response:
        # One route for both methods, so that another method is a 405 that allows both.
        if request.method == "POST":
            return await self.search_post(request)
        return await run_in_threadpool(self.search_get, request)

    def neighbors(self, request: Request) -> Response:
        image_id, k, filters = (
            _image_id(request),
            _k(request.query_params),
            _filters(self.session, request.query_params),
        )
        return _hits(
            self.session.run(lambda index: search.neighbors(index, image_id, k, **filters))
        )

    def image(self, request: Request) -> Response:
        found = self.session.image_file(_image_id(request))
        headers = {
            "Content-Disposition": f'inline; filename="{found.filename}"',
            "Content-Security-Policy": FILE_POLICY,
        }
        if found.handle is None:  # s3://: read through the storage layer
            return Response(
                self.session.image_bytes(found), media_type=found.media_type, headers=headers
            )
        headers["Content-Length"] = str(found.size)
        return StreamingResponse(found.chunks(), media_type=found.media_type, headers=headers)

    def thumb(self, request: Request) -> Response:
        side = _int(request.query_params, "size", 256, 16, 1024)
        assert side is not None
        data = self.session.thumbnail(_image_id(request), side)
        headers = {"Cache-Control": "private, max-age=60"}
        return Response(data, media_type="image/jpeg", headers=headers)

    def details(self, request: Request) -> Response:
        image_id = _image_id(request)
        return json_response(self.session.run(lambda index: browse.image_details(index, image_id)))

    def facets(self, request: Request) -> Response:
        return json_response(self.session.run(browse.facets))

    def map_points(self, request: Request) -> Response:
        body = self.session.map_json_gz()
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers = {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
            return Response(body, media_type="application/json", headers=headers)
        return Response(gzip.decompress(body), media_type="application/json")

    def leakage(self, request: Request) -> Response:
        shown = _int(request.query_params, "pairs", leakage.SHOWN_PAIRS, 0, config.SERVE_MAX_K)
        assert shown is not None
        return json_response(
            self.session.run(lambda index: leakage.latest_leakage(index, shown=shown))
        )

    def sql(self, request: Request) -> Response:
        query = request.query_params.get("q")
        if query is None:
            raise UsageError("give the SQL in q, e.g. /api/sql?q=SELECT count(*) FROM images")
        result = self.session.sql.rows(query)
        limits = self.session.sql.limits
        return json_response(
            {
                "columns": result.columns,
                "rows": [dict(zip(result.columns, row)) for row in result.rows],
                "truncated": result.truncated,
                "cut_by": result.cut,
                "max_rows": limits.max_rows,
                "max_bytes": limits.max_bytes,
            }
        )

    def shared_script(self, request: Request) -> Response:
        text = browse.shared_script(request.path_params["name"])
        return Response(text, media_type="text/javascript")

    def page(self, request: Request) -> Response:
        return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))

    def table(self) -> list[Route | Mount]:
        return [
            Route("/", self.page),
            Route("/api/status", self.status),
            Route("/api/search", self.search_any, methods=["GET", "POST"]),
            Route("/api/neighbors/{id}", self.neighbors),
            Route("/api/images/{id}", self.image),
            Route("/api/thumbs/{id}", self.thumb),
            Route("/api/details/{id}", self.details),
            Route("/api/facets", self.facets),
            Route("/api/map", self.map_points),
            Route("/api/leakage", self.leakage),
            Route("/api/sql", self.sql),
            Route("/static/lib/{name}", self.shared_script),
            Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
        ]


def create_app(session: Session, token: str | None = None) -> Starlette:
    """The app over `session`; with a token, only requests that carry it are answered
    (guard.RequestGuard)."""
    app = Starlette(
        routes=Routes(session).table(),
        exception_handlers={
            IdxError: _idx_error,
            HTTPException: _http_error,
            BodyTooLarge: _too_large,
            Exception: _internal,
        },
    )
    # The last added runs first: headers on every answer, then the guard, then the body limit.
    app.add_middleware(BodyLimit, max_bytes=config.max_upload())
    app.add_middleware(RequestGuard, token=token)
    app.add_middleware(SecurityHeaders)
    return app
