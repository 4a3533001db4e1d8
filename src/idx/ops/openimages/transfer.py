"""One file from an http(s):// or s3:// URL to a local path: bounded, retried, written atomically.

HTTP goes through requests with urllib3's `Retry` for the answers worth asking again (429 and
5xx, a Retry-After of at most MAX_RETRY_AFTER_S honoured); a connection refused or reset, a
timeout, or a body cut short (a reset mid-file) is retried here, from the start, with exponential
backoff. s3:// goes through fsspec (s3fs), anonymously unless AWS credentials are set, since the
Open Images bucket is public. A file the server lacks (404, 403, 410) raises `Missing` at once.

Bytes go to a hidden `.NAME.<random>.part` file beside the destination, which is renamed over it
only when complete (and synced), so a process killed at any moment leaves no partial file under
a final name; `remove_partials` clears what a killed run left.
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from idx.errors import UsageError

#: Statuses asked again (urllib3's Retry, with backoff); any other non-200 answer is final.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Statuses that mean the file is not there (S3 answers 403 for a missing key to anonymous users).
MISSING_STATUSES = frozenset({403, 404, 410})
#: A server's Retry-After beyond this is cut to it: a hostile one must not stall a fetch.
MAX_RETRY_AFTER_S = 30.0
CHUNK = 1 << 16
PARTIAL_GLOB = ".*.part"

OnBytes = Callable[[int], None]
Check = Callable[[bytes], "str | None"]


class CappedRetry(Retry):
    """urllib3's Retry with a server's Retry-After cut to MAX_RETRY_AFTER_S."""

    def get_retry_after(self, response: Any) -> float | None:
        after = super().get_retry_after(response)
        return None if after is None else min(after, MAX_RETRY_AFTER_S)


class Missing(Exception):
    """The server does not have the file."""


class TransferError(Exception):
    """The file could not be fetched: retries ran out, or the answer was refused."""


class _Transient(Exception):
    """A failure worth trying again (connection, timeout, body cut short)."""


class Client:
    """Downloads over HTTP(S) and S3 from any number of threads (a requests session each)."""

    def __init__(
        self,
        *,
        attempts: int = 5,
        backoff_s: float = 0.25,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 60.0,
    ):
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.timeouts = (connect_timeout_s, read_timeout_s)
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._s3: Any = None
        self._lock = threading.Lock()

    def download(
        self,
        url: str,
        dest: Path,
        *,
        max_bytes: int,
        on_bytes: OnBytes | None = None,
        check: Check | None = None,
    ) -> int:
        """Fetch `url` into `dest` (replaced only when complete); its size. `on_bytes` gets the
        bytes read so far of the current attempt; `check` sees the first chunk and returns why it
        is refused, or None. Raises Missing, TransferError, or OSError when writing fails."""
        reason = ""
        for attempt in range(self.attempts):
            if attempt:
                delay = self.backoff_s * 2 ** (attempt - 1)
                time.sleep(delay * random.uniform(0.5, 1.0))
            try:
                chunks = self._chunks(url, max_bytes)
                return write_atomically(dest, _checked(chunks, check), on_bytes)
            except _Transient as exc:
                reason = str(exc)
        raise TransferError(f"{reason} (after {self.attempts} attempts)")

    def _chunks(self, url: str, max_bytes: int) -> Iterator[bytes]:
        if url.startswith("s3://"):
            return self._s3_chunks(url, max_bytes)
        return self._http_chunks(url, max_bytes)

    # -- HTTP -------------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            retry = CappedRetry(
                total=self.attempts - 1,
                connect=0,  # exceptions are retried in download(), from the start of the file
                read=0,
                other=0,
                redirect=0,
                status=self.attempts - 1,
                status_forcelist=RETRY_STATUSES,
                allowed_methods=frozenset({"GET"}),
                backoff_factor=self.backoff_s,
                raise_on_status=False,
            )
            adapter = HTTPAdapter(max_retries=retry, pool_connections=1, pool_maxsize=2)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def close(self) -> None:
        """Close the connections of every thread's session."""
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _http_chunks(self, url: str, max_bytes: int) -> Iterator[bytes]:
        try:
            response = self._session().get(
                url, stream=True, timeout=self.timeouts, allow_redirects=False
            )
        except requests.RequestException as exc:
            raise _Transient(_why(exc)) from None
        with response:
            status = response.status_code
            if status in MISSING_STATUSES:
                raise Missing(f"not on the server (HTTP {status})")
            if status != 200:
                moved = response.headers.get("Location")
                raise TransferError(
                    f"HTTP {status} {response.reason or ''}".rstrip()
                    + (
                        f" to {moved}: redirects are not followed; give the base URL where the files are"
                        if moved
                        else ""
                    )
                    + (f" after {self.attempts} attempts" if status in RETRY_STATUSES else "")
                )
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise TransferError(_too_large(int(length), max_bytes))
            read = 0
            try:
                for chunk in response.iter_content(CHUNK):
                    read += len(chunk)
                    if read > max_bytes:
                        raise TransferError(_too_large(read, max_bytes))
                    yield chunk
            except requests.RequestException as exc:
                raise _Transient(_why(exc)) from None

    # -- S3 ---------------------------------------------------------------------------------

    def _s3fs(self) -> Any:
        with self._lock:
            if self._s3 is None:
                try:
                    import fsspec

                    credentials = any(
                        os.environ.get(n) for n in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE")
                    )
                    self._s3 = fsspec.filesystem("s3", anon=not credentials)
                except ImportError:
                    raise UsageError(
                        "reading s3:// needs s3fs: pip install 'idx-clip[s3]' (s3fs), or use "
                        "the https:// endpoint"
                    ) from None
            return self._s3

    def _s3_chunks(self, url: str, max_bytes: int) -> Iterator[bytes]:
        fs = self._s3fs()
        try:
            fh = fs.open(url, "rb", block_size=CHUNK * 16)
        except (FileNotFoundError, PermissionError) as exc:
            raise Missing(f"not on the server ({type(exc).__name__})") from None
        except Exception as exc:  # noqa: BLE001 - botocore/aiohttp errors: worth another try
            raise _Transient(_why(exc)) from None
        with fh:
            if fh.size > max_bytes:
                raise TransferError(_too_large(fh.size, max_bytes))
            while True:
                try:
                    chunk = fh.read(CHUNK * 16)
                except Exception as exc:  # noqa: BLE001 - as above
                    raise _Transient(_why(exc)) from None
                if not chunk:
                    return
                yield chunk


def _checked(chunks: Iterator[bytes], check: Check | None) -> Iterator[bytes]:
    first = True
    for chunk in chunks:
        if first and check is not None:
            reason = check(chunk)
            if reason:
                raise TransferError(reason)
        first = False
        yield chunk


def write_atomically(dest: Path, chunks: Iterator[bytes], on_bytes: OnBytes | None = None) -> int:
    """Write `chunks` in place of `dest` (see `replacing`); the bytes written."""
    written = 0
    with replacing(dest) as partial, open(partial, "xb") as fh:
        for chunk in chunks:
            fh.write(chunk)
            written += len(chunk)
            if on_bytes is not None:
                on_bytes(written)
    return written


@contextmanager
def replacing(dest: Path) -> Iterator[Path]:
    """A hidden partial path beside `dest` to write; when the block ends without an exception
    the file is synced and renamed over `dest`, else removed."""
    partial = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}.part")
    try:
        yield partial
        with open(partial, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(partial, dest)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def remove_partials(folder: Path) -> int:
    """Remove the partial files a killed run left in `folder`; how many there were."""
    found = list(folder.glob(PARTIAL_GLOB)) if folder.is_dir() else []
    for path in found:
        path.unlink(missing_ok=True)
    return len(found)


def _too_large(size: int, limit: int) -> str:
    return f"larger than the {limit / 1e6:g} MB a file of this kind may be ({size / 1e6:.1f} MB)"


def _why(exc: BaseException) -> str:
    """A short reason: the exception's type and the first line of its message."""
    text = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return text if len(text) < 300 else text[:297] + "..."
