"""The running job of an index, visible to other processes: `<index>/job.json`.

A writer (an `add`) records what it does as it goes: command, pid, start, done/total, images/s,
ETA. The file is replaced atomically at most once a second and removed when the job ends well.
Status reads it without touching the catalog; a job whose process no longer holds the write lock
is reported as interrupted, with the command that resumes it.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from idx import config
from idx.indexer.catalog.lock import writer_pid
from idx.progress import Progress, ProgressEvent

if TYPE_CHECKING:
    from idx.indexer.ingest.settings import RunSettings

JOB_FILE = config.JOB_FILE


class Job:
    """Records one writer's progress; use as a context manager around the work."""

    def __init__(self, index_dir: Path, command: str, resume: str, forward: Progress | None):
        self.path = Path(index_dir) / JOB_FILE
        self.forward = forward
        self.state: dict[str, Any] = {
            "command": command,
            "resume": resume,
            "pid": os.getpid(),
            "started_at": _now(),
            "phase": "start",
            "done": 0,
            "total": 0,
        }
        self._start = time.monotonic()
        self._written = 0.0
        self._embed_start: tuple[float, int] | None = None

    def __enter__(self) -> Job:
        self._write()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.path.unlink(missing_ok=True)
        elif exc_type is KeyboardInterrupt:  # kept for status, with how to resume
            self.state |= {"phase": "interrupted"}
            self._write()
        else:
            self.state |= {"phase": "failed", "error": str(exc) or type(exc).__name__}
            self._write()

    def __call__(self, event: ProgressEvent) -> None:
        if self.forward is not None:
            self.forward(event)
        now = time.monotonic()
        if event.phase == "embed" and self._embed_start is None:
            self._embed_start = (now, event.done)
        new_phase = event.phase != self.state["phase"]  # written at once: its total is news
        self.state |= {"phase": event.phase, "done": event.done, "total": event.total}
        if new_phase or now - self._written >= 1.0:
            self._write()

    def _write(self) -> None:
        now = time.monotonic()
        rate = None
        if self._embed_start is not None and self.state["phase"] == "embed":
            started, first = self._embed_start
            if now > started and self.state["done"] > first:
                rate = (self.state["done"] - first) / (now - started)
        left = self.state["total"] - self.state["done"]
        self.state |= {
            "updated_at": _now(),
            "seconds": round(now - self._start, 1),
            "images_per_s": None if rate is None else round(rate, 2),
            "eta_s": None if not rate or left <= 0 else round(left / rate, 1),
        }
        tmp = self.path.with_name(f".{JOB_FILE}.{os.getpid()}")
        tmp.write_text(json.dumps(self.state, indent=1))
        os.replace(tmp, self.path)
        self._written = now


def current(index_dir: Path) -> dict[str, Any] | None:
    """The index's job as other processes see it: the recorded state with `status` set to
    running (its writer holds the lock), interrupted (it died) or failed; None when no job."""
    try:
        state = json.loads((Path(index_dir) / JOB_FILE).read_text())
    except (OSError, ValueError):
        return None
    holder = writer_pid(index_dir)
    if state.get("phase") in ("failed", "interrupted"):
        status = state["phase"]
    elif holder is not None and holder in (state.get("pid"), -1):
        status = "running"
    else:
        status = "interrupted"
    return state | {"status": status}


def resume_command(index_dir: Path, paths: list[str], run: RunSettings) -> str:
    """The `idx add` that runs this again, for `idx status` to show (the engine only where it is
    not the default)."""
    flags = [] if run.engine == "local" else ["--engine", run.engine]
    flags += ["--ray-address", run.ray_address] if run.ray_address and run.engine == "ray" else []
    folders = [p if "://" in p else os.path.abspath(p) for p in paths]  # shown later, elsewhere
    return config.command(index_dir, "add", *folders, *flags, relative=False)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
