"""Who holds the catalog and who waits for it: the writers' lock file and the readers' markers.

Writers exclude each other with an advisory lock on `<index>/write.lock`, which holds the writer's
pid so that a second writer can say whom it waits for. A reader that finds the DuckDB file held
leaves a marker in `<index>/readers/`, so that the writer lets the file go between batches.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from idx import config
from idx.errors import IndexBusyError


def busy_message(index_dir: Path, detail: str = "") -> str:
    pid = writer_pid(index_dir)
    who = f" (pid {pid})" if pid else ""
    return (
        f"index is busy: another idx process{who} is using {index_dir}{detail}; wait for it to "
        "finish (or pass --wait SECONDS to queue behind it), or use another --index"
    )


def writer_pid(index_dir: Path) -> int | None:
    """The pid of the process that holds the index for writing now, None when none does."""
    lock = Path(index_dir) / config.LOCK_FILE
    try:
        fh = open(lock)
    except OSError:
        return None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = fh.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fh, fcntl.LOCK_UN)
    return None


def take_write_lock(index_dir: Path, wait: float) -> Any:
    """The write lock, taken (waiting up to `wait` seconds behind another writer) with this
    process's pid written in it: the open lock file, for `release_write_lock`."""
    fh = open(Path(index_dir) / config.LOCK_FILE, "a+")
    deadline = time.monotonic() + max(0.0, wait)
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                fh.close()
                detail = f" (waited {wait:g} s)" if wait > 0 else ""
                raise IndexBusyError(busy_message(index_dir, detail)) from None
            time.sleep(0.1)
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    _HELD_LOCKS.add(fh)
    return fh


def release_write_lock(fh: Any) -> None:
    fcntl.flock(fh, fcntl.LOCK_UN)
    _HELD_LOCKS.discard(fh)
    fh.close()


#: The write locks this process holds (their open lock files).
_HELD_LOCKS: weakref.WeakSet = weakref.WeakSet()


def _drop_inherited_locks() -> None:
    """In a forked child (a decode worker): close the lock files inherited from the writer, so
    that the lock ends with the writer and not with its last child. Closing a copy does not
    unlock (flock's lock belongs to the open file, which the writer still has)."""
    for fh in list(_HELD_LOCKS):
        fh.close()
    _HELD_LOCKS.clear()


os.register_at_fork(after_in_child=_drop_inherited_locks)


def readers_waiting(index_dir: Path) -> bool:
    """Whether a reader is waiting for the catalog (a marker of a live process in readers/)."""
    folder = Path(index_dir) / config.READERS_DIR
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return False
    for entry in entries:
        pid = entry.name.split("-")[0]
        if pid.isdigit() and _alive(int(pid)):
            return True
        Path(entry.path).unlink(missing_ok=True)  # left by a reader that died waiting
    return False


def announce_reader(index_dir: Path) -> Path | None:
    """Leave this thread's marker in readers/ (the caller unlinks it when it got the file)."""
    folder = Path(index_dir) / config.READERS_DIR
    try:
        folder.mkdir(exist_ok=True)
        marker = folder / f"{os.getpid()}-{threading.get_ident()}"
        marker.touch()
        return marker
    except OSError:  # a read-only folder: the writer then releases on its own schedule
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
