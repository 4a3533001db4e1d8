"""`add --engine ray` on a local Ray cluster: the same result as the local engine, nothing lost or
doubled when a worker or the driver dies, embedding actors on every node of a cluster, and the
Ray that idx starts for itself reachable from this machine only."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest

from idx import synthetic
from idx.indexer.index import Index
from idx.indexer.model import precision as precisions

from .test_incremental import check_invariants

pytest.importorskip("ray", reason="Ray is not installed: pip install 'idx-clip[ray]'")
# Ray's own copy of psutil (ray/thirdparty_files, on sys.path once ray is imported)
psutil = pytest.importorskip("psutil", reason="psutil comes with Ray: pip install 'idx-clip[ray]'")

#: each image's row, and its content's perceptual hash (issue 23: it travels back from a Ray task)
ROWS = (
    "SELECT i.id, i.path, i.sha256, i.bytes, i.mtime_ns, i.width, i.height, i.format, e.phash "
    "FROM images i LEFT JOIN embeddings e USING (sha256) ORDER BY i.id"
)
SRC = str(Path(__file__).parents[1] / "src")
#: Ray's own switch that keeps a node it starts on 127.0.0.1 (read once, when ray is imported).
LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def _state(index: Index) -> tuple[list, list, np.ndarray, np.ndarray]:
    """(rows, skipped rows, vectors by id, each image's top-10 neighbours by the FAISS index)."""
    con = index.catalog.con
    rows = con.execute(ROWS).fetchall()
    skipped = con.execute("SELECT path, reason FROM skipped ORDER BY path").fetchall()
    _, vectors = index.embeddings()
    _, neighbours = index.vectors.search(vectors, 10)
    return rows, skipped, vectors, neighbours


def _same(a: Index, b: Index) -> None:
    rows_a, skipped_a, vectors_a, top_a = _state(a)
    rows_b, skipped_b, vectors_b, top_b = _state(b)
    assert rows_a == rows_b
    assert skipped_a == skipped_b
    np.testing.assert_allclose(vectors_a, vectors_b, atol=1e-5)
    # The same neighbours in the same order; two neighbours may only trade places when they are
    # equally near (their cosines within float noise: batches of other sizes round differently).
    ids = {int(image_id): row for row, image_id in enumerate(r[0] for r in rows_a)}
    cosine = vectors_a @ vectors_a.T
    for query, (mine, theirs) in enumerate(zip(top_a, top_b)):
        for x, y in zip(mine, theirs):
            assert x == y or abs(cosine[query, ids[x]] - cosine[query, ids[y]]) < 1e-5, (
                f"neighbours of image {rows_a[query][0]} differ: {mine} vs {theirs}"
            )


def test_ray_engine_gives_the_local_engines_rows_vectors_and_neighbours(
    ray_cluster, images, tiny_model, tmp_path
):
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    first = sorted(images.rglob("*.jpg"))[0]
    shutil.copy(first, images / "copy-of-first.jpg")  # the same content twice in one run
    reports, events = {}, []
    for engine in ("local", "ray"):
        with Index(tmp_path / engine, **tiny_model) as index:
            progress = events.append if engine == "ray" else None
            reports[engine] = index.add([images], engine=engine, progress=progress)
    with Index(tmp_path / "local") as local, Index(tmp_path / "ray") as ray_index:
        _same(local, ray_index)
    ignore = {"seconds", "images_per_s", "engine", "nodes", "device", "timings"}
    local_report, ray_report = (
        {k: v for k, v in reports[e].as_dict().items() if k not in ignore} for e in reports
    )
    assert ray_report == local_report
    assert (reports["ray"].added, reports["ray"].skipped, reports["ray"].reused) == (49, 1, 1)
    assert reports["ray"].as_dict()["nodes"] == 1
    embed = [e for e in events if e.phase == "embed"]
    assert embed[-1].done == embed[-1].total == 50  # the job's progress, as with the local engine


def test_workers_killed_mid_batch_lose_and_double_nothing(
    ray_cluster, synthetic_set, indexed, tiny_model, tmp_path, monkeypatch
):
    """A decode task and an embedding actor each exit once mid-batch (os._exit): Ray retries the
    task and restarts the actor, and the index ends up as a clean local add makes it."""
    markers = [tmp_path / "decode.crashed", tmp_path / "embed.crashed"]
    monkeypatch.setenv("IDX_RAY_FAULT", f"decode:{markers[0]},embed:{markers[1]}")
    with Index(tmp_path / "index", **tiny_model) as index:
        report = index.add([synthetic_set], engine="ray", batch_size=8)
        assert all(m.exists() for m in markers), "the injected crashes did not happen"
        assert (report.added, report.embedded) == (48, 48)
        check_invariants(index, synthetic_set)
        with Index(indexed, read_only=True) as reference:
            _same(reference, index)


# A driver that slows down once 20 files are through, so that the kill lands mid-run however
# busy the machine is.
DRIVER = """
import sys, time
from idx import Index
index_dir, images, model, checkpoint, address = sys.argv[1:6]
def progress(event):
    print(event.phase, event.done, flush=True)
    if event.phase == "embed" and event.done >= 20:
        time.sleep(0.5)
with Index(index_dir, model=model, checkpoint=checkpoint) as index:
    index.add([images], batch_size=4, engine="ray", ray_address=address, progress=progress)
"""


def test_driver_killed_then_rerun_submits_only_what_was_not_committed(
    ray_cluster, images, tiny_model, tmp_path
):
    index_dir = tmp_path / "index"
    args = [str(index_dir), str(images), tiny_model["model"], tiny_model["checkpoint"]]
    child = subprocess.Popen(
        [sys.executable, "-c", DRIVER, *args, ray_cluster],
        env={**os.environ, "PYTHONPATH": SRC},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    for line in child.stdout:
        phase, done = line.split()
        if phase == "embed" and int(done) >= 20:
            break
    child.send_signal(signal.SIGKILL)
    child.wait()
    with Index(index_dir) as index:
        committed = index.catalog.images.count()
    assert 0 < committed < 48, f"the kill did not land mid-run ({committed} committed)"
    events = []
    with Index(index_dir) as index:
        report = index.add([images], engine="ray", progress=events.append)
        submitted = max(e.total for e in events if e.phase == "embed")
        assert submitted == 48 - committed
        assert (report.unchanged, report.added, report.embedded) == (committed,) + (submitted,) * 2
        check_invariants(index, images)


TWO_NODES = """
import json, sys
import ray
from ray.cluster_utils import Cluster
from idx import Index
from idx.indexer.ingest.engines.ray import LOOPBACK
index_dir, images, model, checkpoint = sys.argv[1:5]
held = []
def progress(event):
    if event.phase == "embed" and event.done and not held:
        held.append(event)
        print("held: running", flush=True)  # while the test reads the cluster's sockets
        sys.stdin.readline()
# both nodes on 127.0.0.1, where they listen and talk (on any other address Ray's processes
# listen on every interface); the head up before the other, each given 300 s, not Ray's 30 s
# (on a loaded 2-core machine a node may take longer to start)
cluster = Cluster()
cluster.add_node(wait=False, num_cpus=2, node_ip_address=LOOPBACK)
cluster.wait_for_nodes(timeout=300)
cluster.add_node(wait=False, num_cpus=2, node_ip_address=LOOPBACK)
cluster.wait_for_nodes(timeout=300)
try:
    with Index(index_dir, model=model, checkpoint=checkpoint) as index:
        report = index.add(
            [images], engine="ray", ray_address=cluster.address, batch_size=8, progress=progress
        )
    nodes = sorted(node.node_ip_address for node in cluster.list_all_nodes())
    print(json.dumps({"report": report.as_dict(), "nodes": nodes}))
finally:
    ray.shutdown()
    cluster.shutdown()
"""


def test_a_two_node_cluster_embeds_on_both_nodes(ray_cluster, tiny_model, tmp_path):
    """Its own two-node cluster, in a child process (this one is attached to the session's), on
    loopback only. 128 images, 8 decode tasks (engines.ray.TASK_FILES): Ray spreads them over
    the nodes, one at a time on each beside its actor, and each actor embeds what was decoded
    on its node; with 3 tasks (48 images) one node doing them all was a matter of timing."""
    images = tmp_path / "images"
    synthetic.generate(images, per_category=16, size=64)
    args = [str(tmp_path / "index"), str(images), tiny_model["model"]]
    said, listening, out = _held(TWO_NODES, [*args, tiny_model["checkpoint"]], dict(os.environ))
    done = json.loads(out.strip().splitlines()[-1])
    assert (done["report"]["added"], done["report"]["nodes"]) == (128, 2), done
    assert done["nodes"] == ["127.0.0.1"] * 2
    _assert_ray_on_loopback_only(listening)


def test_int8_is_checked_against_fp32_on_ray_workers(ray_cluster, images, tiny_model, tmp_path):
    pytest.importorskip("onnxruntime", reason="pip install 'idx-clip[int8]'")
    with Index(tmp_path / "index", precision="int8", **tiny_model) as index:
        report = index.add([images], engine="ray")
        assert report.precision == "int8"
        state = precisions.recorded(index.catalog)
    assert state["int8_passed"] and state["int8_agreement"] >= 0.99
    assert state["used"] == ["int8"]


def _is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped  # an IPv6 socket bound to ::ffff:127.0.0.1
    return address.is_loopback


def _listening(processes: list) -> list[tuple[str, str, int]]:
    """(process name, address, port) of every listening TCP socket of these processes."""
    found = []
    for process in processes:
        try:
            name = process.name()
            sockets = process.net_connections(kind="tcp")
        except psutil.NoSuchProcess:  # an idle worker Ray let go meanwhile
            continue
        found += [
            (name, s.laddr.ip, s.laddr.port) for s in sockets if s.status == psutil.CONN_LISTEN
        ]
    return found


def _assert_ray_on_loopback_only(listening: list[tuple[str, str, int]]) -> None:
    names = {name for name, _, _ in listening}
    # Ray's processes were there to be read: its GCS, a raylet, workers or actors
    assert {"gcs_server", "raylet"} <= names, listening
    assert any(name.startswith("ray::") for name in names), listening
    exposed = [entry for entry in listening if not _is_loopback(entry[1])]
    assert not exposed, f"listening beyond loopback: {exposed}"


def _held(script: str, args: list[str], env: dict[str, str]) -> tuple[str, list, str]:
    """Run `script` in a child process that prints "held: WHAT" and then waits on stdin: (WHAT,
    every listening TCP socket of the child and its descendants then, what it prints after); the
    child must then exit 0. Ray's gcs_server and raylet are the driver's children, its workers and agents the
    raylet's; all are killed on failure, the child after 300 s."""
    with tempfile.TemporaryFile("w+") as stderr:
        child = subprocess.Popen(
            [sys.executable, "-c", script, *args],
            env={**env, "PYTHONPATH": SRC},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        watchdog = threading.Timer(300, child.kill)
        watchdog.start()
        processes: list = []
        listening: list = []
        out = ""
        try:
            line = ""
            for line in child.stdout:  # Ray may print its workers' output here too
                if line.startswith("held: "):
                    break
            if line.startswith("held: "):
                driver = psutil.Process(child.pid)
                processes = [driver, *driver.children(recursive=True)]
                listening = _listening(processes)
                out, _ = child.communicate("go on\n", timeout=300)
            code = child.wait()
            stderr.seek(0)
            assert line.startswith("held: ") and code == 0, stderr.read()[-3000:]
        finally:
            watchdog.cancel()
            if child.poll() is None:
                child.kill()
                for process in processes:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        process.kill()
                child.wait()
    return line.removeprefix("held: ").strip(), listening, out


# idx's own Ray instance (no address), held once the embedding actors are at work, so that its
# gcs_server, raylet, agents and workers are all up while the test reads their sockets.
HELD_MID_RUN = """
import sys
from idx import Index
index_dir, images, model, checkpoint = sys.argv[1:5]
held = []
def progress(event):
    if event.phase == "embed" and event.done and not held:
        held.append(event)
        print("held: running", flush=True)
        sys.stdin.readline()
with Index(index_dir, model=model, checkpoint=checkpoint) as index:
    index.add([images], engine="ray", progress=progress)
"""


def test_the_ray_idx_starts_for_itself_listens_on_loopback_only(images, tiny_model, tmp_path):
    """Ray runs whatever code reaches its ports; the instance `idx add --engine ray` starts
    without an address must not listen on the machine's network interfaces (Ray's default)."""
    # neither a cluster to join nor Ray's own loopback switch: what idx does by itself
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", LOOPBACK_SWITCH)}
    args = [str(tmp_path / "index"), str(images), tiny_model["model"], tiny_model["checkpoint"]]
    said, listening, _ = _held(HELD_MID_RUN, args, env)
    assert said == "running"
    _assert_ray_on_loopback_only(listening)


def test_the_tests_own_ray_listens_and_talks_on_loopback_only(ray_cluster):
    """The session's instance (conftest.ray_cluster, started in this process after `import
    ray`, which is when Ray reads its own loopback switch)."""
    import ray

    assert ray_cluster.startswith("127.0.0.1:")
    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}
    ray.get(ray.remote(lambda: None).remote())  # a worker up
    me = psutil.Process()
    _assert_ray_on_loopback_only(_listening([me, *me.children(recursive=True)]))
