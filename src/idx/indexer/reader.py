"""The read stage of `add`: read, hash and (for new content only) decode and preprocess files.

Runs in threads ahead of the model, in input order, with a bounded look-ahead so that memory
stays flat however many files there are.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from idx.errors import DecodeError
from idx.indexer import decode, scan


@dataclass
class Prepared:
    """A file read and hashed; `tensor` is set when its content needs embedding."""

    entry: scan.FileEntry
    sha256: str
    width: int = 0
    height: int = 0
    format: str = ""
    tensor: Any = None


class Reader:
    """Reads files for one run; content whose hash is in `known` is hashed but not decoded."""

    def __init__(
        self,
        encoder_factory: Callable[[], Any],
        known: frozenset[str],
        *,
        workers: int,
        lookahead: int,
    ):
        self.encoder_factory = encoder_factory
        self.known = known
        self.workers = workers
        self.lookahead = lookahead
        self.encoder: Any = None
        self._encoder_lock = threading.Lock()

    def prepare(self, entry: scan.FileEntry) -> Prepared | scan.Skip:
        def skip(reason: str) -> scan.Skip:
            return scan.Skip(entry.path, reason, entry.bytes, entry.mtime_ns, entry.ctime_ns)

        try:
            data = decode.read_file(entry.path)
        except FileNotFoundError:
            return scan.Skip(entry.path, "file vanished before it could be read")
        except PermissionError:
            return skip("permission denied; make the file readable (chmod +r) and run add again")
        except OSError as exc:
            return skip(f"cannot read file ({exc.strerror})")
        prepared = Prepared(entry, hashlib.sha256(data).hexdigest())
        if prepared.sha256 in self.known:
            return prepared
        try:
            encoder = self.get_encoder()
            decoded = decode.decode(data, encoder.image_size)
            prepared.tensor = encoder.preprocess(decoded.image)
        except DecodeError as exc:
            return skip(str(exc))
        prepared.width, prepared.height = decoded.width, decoded.height
        prepared.format = decoded.format
        return prepared

    def get_encoder(self) -> Any:
        # Loaded by the first worker that meets new content: a run of moves never loads torch.
        with self._encoder_lock:
            if self.encoder is None:
                self.encoder = self.encoder_factory()
        return self.encoder

    def stream(self, todo: list[scan.FileEntry]) -> Iterator[Prepared | scan.Skip]:
        """Results in input order, with at most `lookahead` files read ahead."""
        if not todo:
            return
        with ThreadPoolExecutor(self.workers, thread_name_prefix="idx-decode") as pool:
            pending: deque[Future] = deque()
            it = iter(todo)
            for entry in it:
                pending.append(pool.submit(self.prepare, entry))
                if len(pending) >= self.lookahead:
                    break
            while pending:
                result = pending.popleft().result()
                nxt = next(it, None)
                if nxt is not None:
                    pending.append(pool.submit(self.prepare, nxt))
                yield result
