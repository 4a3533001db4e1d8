"""A live index: readers work while `idx add` writes, see every committed batch, and see the job;
writers queue on request; a failed first add leaves no index behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from idx import synthetic
from idx.cli.main import cli
from idx.indexer.index import Index
from tests.paced import paced

SRC = str(Path(__file__).resolve().parents[1] / "src")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def many_images(tmp_path_factory) -> Path:
    """1,040 small generated images (8 categories x 130)."""
    root = tmp_path_factory.mktemp("many") / "images"
    synthetic.generate(root, per_category=130, size=40)
    return root


def _writer(index_dir: Path, images: Path, tiny_model: dict) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "idx", "--index", str(index_dir), "add", str(images), "-q"]
    cmd += ["--model", tiny_model["model"], "--checkpoint", tiny_model["checkpoint"]]
    cmd += ["--batch-size", "16", "--workers", "1"]
    env = {**os.environ, "PYTHONPATH": SRC, "IDX_INDEX": str(index_dir)}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _read_everything(index_dir: Path, out: Path, tiny_args: list[str]) -> dict:
    """One round of the readers a user runs beside a writer; their results (None while the
    first batch is not committed yet: search and export then rightly say there is nothing)."""
    status = run("--index", index_dir, "status", "--json")
    if status.exit_code == 0 and json.loads(status.stdout)["images"] == 0:
        return None
    sql = run("--index", index_dir, "sql", "SELECT count(*) AS n FROM images", "--json")
    search = run("--index", index_dir, "search", "--text", "red circles", *tiny_args, "--json")
    export = run("--index", index_dir, "export", out)
    results = {"status": status, "sql": sql, "search": search, "export": export}
    failed = {k: (r.exit_code, r.stderr) for k, r in results.items() if r.exit_code != 0}
    if failed:
        return {"failed": failed}
    return {
        "images": json.loads(status.stdout)["images"],
        "job": json.loads(status.stdout)["job"],
        "sql": json.loads(sql.stdout)[0]["n"],
        "hits": len(json.loads(search.stdout)),
        "exported": pq.read_metadata(out).num_rows,
    }


#: A user's `idx status --json` in a loop, in a process of its own: a reader beside the writer
#: whether it runs or stands still. Prints "EXIT_CODE IMAGES" (or the error) a line per call.
_STATUS_LOOP = """
import json, sys
from click.testing import CliRunner
from idx.cli.main import cli
while True:
    r = CliRunner().invoke(cli, ["--index", sys.argv[1], "status", "--json"])
    shown = json.loads(r.stdout)["images"] if r.exit_code == 0 else repr(r.stderr)
    print(r.exit_code, shown, flush=True)
"""


def _rounds_beside(proc, index_dir, tmp_path, tiny_args):
    """Rounds of readers while the writer stands still between slices of its work (paced), and
    a status loop in another process reading all along, slices included: (rounds, the loop's
    lines)."""
    rounds, beside = [], None
    try:
        for _ in paced(proc, index_dir):
            if beside is None:
                env = {**os.environ, "PYTHONPATH": SRC}
                cmd = [sys.executable, "-c", _STATUS_LOOP, str(index_dir)]
                beside = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
                lines = [beside.stdout.readline()]  # its first read, before the writer goes on
            found = _read_everything(index_dir, tmp_path / "out.parquet", tiny_args)
            if found is not None:
                rounds.append(found)
    finally:
        if beside is not None:
            beside.kill()
            lines += beside.stdout.read().splitlines()
    return rounds, [line.split(" ", 1) for line in lines if line.strip()]


def _kill_when(proc, index_dir, tmp_path, tiny_args, images: int):
    """Rounds of readers beside the writer in slow motion, and the writer killed (while it
    stands still, so mid-run for sure) once they count `images`."""
    rounds = []
    for _ in paced(proc, index_dir):
        found = _read_everything(index_dir, tmp_path / "out.parquet", tiny_args)
        if found is not None:
            rounds.append(found)
            if found.get("images", 0) >= images:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
    return rounds


def _check_rounds(rounds: list[dict]) -> list[int]:
    assert rounds, "the writer finished before any reader ran"
    assert [r for r in rounds if "failed" in r] == []
    counts = [r["images"] for r in rounds]
    assert counts == sorted(counts), f"a reader saw the count go down: {counts}"
    for r in rounds:  # one round's readers never see fewer rows than the status before them
        assert r["images"] <= r["sql"] <= r["exported"]
    return counts


def test_readers_work_while_add_writes_and_see_every_batch(
    many_images, tmp_path, tiny_model, tiny_args
):
    index_dir = tmp_path / "index"
    proc = _writer(index_dir, many_images, tiny_model)
    rounds, beside = _rounds_beside(proc, index_dir, tmp_path, tiny_args)
    assert proc.returncode == 0, proc.stderr.read().decode()
    counts = _check_rounds(rounds)
    assert any(0 < c < 1040 for c in counts), f"no reader ran mid-write: {counts}"
    assert any(r["job"] and r["job"]["status"] == "running" for r in rounds)
    assert beside and all(code == "0" for code, _ in beside), beside
    seen = [int(images) for _, images in beside]
    assert seen == sorted(seen) and seen[0] < 1040, seen
    final = _read_everything(index_dir, tmp_path / "final.parquet", tiny_args)
    assert (final["images"], final["sql"], final["exported"]) == (1040, 1040, 1040)
    assert final["job"] is None and final["hits"] == 10


def test_a_killed_writer_shows_as_interrupted_and_resumes(
    many_images, tmp_path, tiny_model, tiny_args
):
    index_dir = tmp_path / "index"
    proc = _writer(index_dir, many_images, tiny_model)
    rounds = _kill_when(proc, index_dir, tmp_path, tiny_args, images=200)
    assert proc.returncode == -signal.SIGKILL, "the writer finished before it was killed"
    counts = _check_rounds(rounds)
    status = json.loads(run("--index", index_dir, "status", "--json").stdout)
    assert counts[-1] <= status["images"] < 1040
    job = status["job"]
    assert job["status"] == "interrupted" and job["done"] < job["total"]
    assert job["resume"].split()[-2:] == ["add", str(many_images)]
    text = run("--index", index_dir, "status").stdout
    assert "interrupted" in text and job["resume"] in text
    resumed = subprocess.run(
        [sys.executable, "-m", "idx", *job["resume"].split()[1:], "--json"],
        env={**os.environ, "PYTHONPATH": SRC},
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["added"] == 1040 - status["images"] and report["removed"] == 0
    final = _read_everything(index_dir, tmp_path / "final.parquet", tiny_args)
    assert (final["images"], final["sql"], final["exported"]) == (1040, 1040, 1040)
    with Index(index_dir, read_only=True) as index:
        paths = list(index.catalog.images.all_paths().values())
    assert len(paths) == len(set(paths)) == 1040


def test_a_second_writer_fails_fast_or_waits(images, tmp_path, tiny_args):
    index_dir = tmp_path / "index"
    assert run("--index", index_dir, "add", images, *tiny_args, "-q").exit_code == 0
    holder = Index(index_dir)  # a writer holding the index
    start = time.monotonic()
    busy = run("--index", index_dir, "add", images, "-q")
    assert busy.exit_code == 1 and "busy" in busy.stderr and "--wait" in busy.stderr
    assert time.monotonic() - start < 5
    threading.Timer(1.0, holder.close).start()
    queued = run("--index", index_dir, "--wait", "30", "add", images, "-q", "--json")
    assert queued.exit_code == 0, queued.stderr
    assert json.loads(queued.stdout)["added"] == 0


def test_a_failed_first_add_leaves_no_index(images, tmp_path):
    index_dir = tmp_path / "new"
    result = run("--index", index_dir, "add", images, "--model", "no-such-model")
    assert result.exit_code == 2 and "no-such-model" in result.stderr
    assert not index_dir.exists()
    status = run("--index", index_dir, "status")
    assert status.exit_code == 1 and "no index at" in status.stderr
    existing = tmp_path / "existing"
    existing.mkdir()
    run("--index", existing, "add", images, "--model", "no-such-model")
    assert existing.is_dir() and list(existing.iterdir()) == []


def test_an_add_with_nothing_new_records_its_model(tmp_path, images, tiny_args):
    empty = tmp_path / "empty"
    empty.mkdir()
    index_dir = tmp_path / "index"
    assert run("--index", index_dir, "add", empty, *tiny_args, "-q").exit_code == 0
    # The next plain add uses the recorded model: no default-model download attempted offline.
    later = run("--index", index_dir, "add", images, "-q", "--json")
    assert later.exit_code == 0, later.stderr
    status = json.loads(run("--index", index_dir, "status", "--json").stdout)
    assert status["model"]["name"] == "idx-tiny" and status["images"] > 0


def test_a_commit_waiting_behind_a_reader_gives_up_when_add_is_interrupted(tmp_path):
    # add's commit thread reconnects behind readers (up to 10 minutes); after Ctrl-C, add waits
    # for that commit, so one not begun gives up rather than keep the user waiting
    from idx.indexer.catalog.db import Database

    db = Database(tmp_path / "index")
    db.release()
    holder = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True); "
    holder += "print('open', flush=True); time.sleep(60)"
    reader = subprocess.Popen(
        [sys.executable, "-c", holder, str(db.path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert reader.stdout.readline().strip() == "open"
        failed: list[BaseException] = []

        def commit() -> None:
            try:
                db.con.execute("SELECT 1")  # connects first
            except BaseException as exc:
                failed.append(exc)

        waiting = threading.Thread(target=commit)
        waiting.start()
        waiting.join(0.5)
        assert waiting.is_alive(), "the writer did not wait behind the reader"
        db.give_up_waiting = True
        waiting.join(5)
        assert not waiting.is_alive() and len(failed) == 1
        assert "gave up waiting for a reader" in str(failed[0]) and str(db.path) in str(failed[0])
    finally:
        reader.kill()
        reader.wait()
    db.give_up_waiting = False
    assert db.con.execute("SELECT 1").fetchall() == [(1,)]  # the reader gone, it connects
    db.close()
