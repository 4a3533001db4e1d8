"""`idx openimages fetch` against a real HTTP server on loopback serving an Open Images mirror in
the official layout (tests/openimages_mirror.py): the class choice through the hierarchy, the
seeded balanced sample, the label files, faults (503s, a missing image, a reset mid-file, a
`kill -9`), S3, and `--index` through to `idx insights --rollup`."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from idx.cli.main import cli
from idx.errors import UsageError
from idx.ops.openimages import classes, selection, sources
from idx.ops.openimages.transfer import Client
from tests.openimages_mirror import (
    TINY_CLASSES,
    Mirror,
    shared_mirror,
    tiny_hierarchy,
    tiny_mirror,
)
from tests.paced import wait_stopped

SRC = str(Path(__file__).resolve().parents[1] / "src")
HIERARCHY = Path(__file__).resolve().parents[2] / "shared" / "data" / "openimages-hierarchy"
SPLIT = "validation"


@pytest.fixture
def mirror(monkeypatch):
    """The generated mirror, served; both bases point at it."""
    with Mirror(tiny_mirror()) as served:
        monkeypatch.setenv("IDX_OPENIMAGES_ANNOTATIONS", served.url)
        monkeypatch.setenv("IDX_OPENIMAGES_IMAGES", served.url)
        yield served


@pytest.fixture
def fast_retries(monkeypatch):
    """Retries a hundred times sooner than a user's fetch makes them."""
    monkeypatch.setitem(Client.__init__.__kwdefaults__, "backoff_s", 0.0025)


def fetch(dest: Path, *args: str):
    return CliRunner().invoke(
        cli, ["openimages", "fetch", str(dest), "--split", SPLIT, *map(str, args)]
    )


def images_in(dest: Path) -> dict[str, bytes]:
    return {p.stem: p.read_bytes() for p in (dest / SPLIT).glob("*.jpg")}


def partials(dest: Path) -> list[Path]:
    return [p for p in dest.rglob("*") if p.name.endswith(".part")]


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def served_images(mirror: Mirror) -> dict[str, bytes]:
    prefix = f"{SPLIT}/"
    return {
        k[len(prefix) : -4]: v
        for k, v in mirror.files.items()
        if k.startswith(prefix) and k.endswith(".jpg")
    }


# -- the parts ---------------------------------------------------------------------------------


def test_choose_takes_is_a_subclasses_but_not_parts():
    table = {key: name for key, name, _ in TINY_CLASSES}
    edges = []
    stack = [tiny_hierarchy()]
    while stack:
        node = stack.pop()
        for key, relation in (("Subcategory", "is_a"), ("Part", "part_of")):
            for child in node.get(key, []):
                edges.append((node["LabelName"], child["LabelName"], relation))
                stack.append(child)
    fruit, apple = classes.choose(["FRUIT", "/m/0apple", "fruit"], table, edges)
    assert fruit.members == ("/m/0fruit", "/m/0apple", "/m/0banana")
    assert fruit.subclasses == ("Apple", "Banana")
    assert apple.members == ("/m/0apple",), "a Part (Stem) is no Apple"
    (exact,) = classes.choose(["Food"], table, edges, exact=True)
    assert exact.members == ("/m/0food",) and exact.subclasses == ()
    with pytest.raises(UsageError, match=r"'Bananas' \(did you mean Banana\?\).*'Qqq'"):
        classes.choose(["Bananas", "Qqq"], table, edges)
    assert classes.split_names(["Fruit, Cookie", "Fruit", ",", "Apple"]) == [
        "Fruit",
        "Cookie",
        "Apple",
    ]


def test_sample_is_seeded_balanced_and_independent_of_order():
    big = {f"{i:016x}" for i in range(100)}
    small = {f"{i:016x}" for i in range(1000, 1003)}
    taken = selection.sample([big, small], 10, seed=1)
    assert selection.per_class([big, small], taken) == [7, 3], "small leaves its share to big"
    again = selection.sample([set(sorted(big, reverse=True)), small], 10, seed=1)
    assert taken == again
    assert set(selection.sample([big, small], 10, seed=2)) != set(taken)
    even = selection.sample([big, {f"{i:016x}" for i in range(200, 300)}], 10, seed=0)
    assert selection.per_class([big, {f"{i:016x}" for i in range(200, 300)}], even) == [5, 5]
    assert sorted(selection.sample([big, small], None, seed=0)) == sorted(big | small)


def test_urls_take_only_checked_ids_and_bases(monkeypatch):
    assert sources.image_url("https://m/", "train", "0123456789abcdef") == (
        "https://m/train/0123456789abcdef.jpg"
    )
    for bad in ("../../etc/passwd", "0123456789ABCDEF", "0123456789abcde", "0123456789abcdef/"):
        with pytest.raises(ValueError):
            sources.image_url("https://m/", "train", bad)
    assert sources.boxes("train") == "v6/oidv6-train-annotations-bbox.csv"
    assert sources.labels("test") == "v5/test-annotations-human-imagelabels-boxable.csv"
    monkeypatch.setenv("IDX_OPENIMAGES_IMAGES", "file:///etc/")
    with pytest.raises(UsageError, match="IDX_OPENIMAGES_IMAGES='file:///etc/'"):
        sources.images_base()


# -- the command -------------------------------------------------------------------------------


def test_fetch_writes_images_metadata_and_label_files(mirror, tmp_path):
    dest = tmp_path / "oi"
    result = fetch(dest, "--classes", "fruit", "--classes", "Cookie", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    fruit, cookie = report["classes"]
    assert fruit["subclasses"] == ["Apple", "Banana"] and cookie["subclasses"] == []
    # the mirror lacks the 'ffff...' image; '../../etc/passwd' is no ImageID and never asked for
    assert (report["candidates"], report["fetched"], report["missing"]) == (
        13,
        12,
        ["ffffffffffffffff"],
    )
    assert not any(".." in path for path in mirror.requests)
    assert images_in(dest) == served_images(mirror)
    assert sorted(p.name for p in (dest / "metadata").iterdir()) == [
        "bbox_labels_600_hierarchy.json",
        "class-descriptions-boxable.csv",
        f"{SPLIT}-annotations-human-imagelabels-boxable.csv",
    ]
    labels = rows(Path(report["files"]["label_file"]))
    assert {r["ImageID"] for r in labels} == set(images_in(dest))
    assert sorted({r["Confidence"] for r in labels}) == ["0", "1"]
    assert report["label_rows"] == {"rows": 24, "images": 12, "positives": 12, "negatives": 12}
    assert "skipping " in result.stderr and "ffffffffffffffff.jpg: not on the server" in (
        result.stderr
    )
    table = fetch(dest, "--classes", "Fruit")
    assert "Fruit (/m/0fruit) and its 2 subclasses through the hierarchy" in table.stdout
    assert "idx labels import --classes" in table.stdout


def test_unknown_class_is_exit_2_with_the_closest_names(mirror, tmp_path):
    result = fetch(tmp_path / "oi", "--classes", "Fruit,Bananna")
    assert result.exit_code == 2 and result.stdout == ""
    assert "unknown class 'Bananna' (did you mean Banana?)" in result.stderr
    assert not images_in(tmp_path / "oi")


def test_limit_gives_the_same_balanced_set_each_time(mirror, tmp_path):
    first = fetch(tmp_path / "a", "--classes", "Apple,Banana,Cookie", "--limit", "6", "--json")
    again = fetch(tmp_path / "b", "--classes", "Apple,Banana,Cookie", "--limit", "6", "--json")
    other = fetch(tmp_path / "c", "--classes", "Apple,Banana,Cookie", "--limit", "6", "--seed", 3)
    assert first.exit_code == again.exit_code == other.exit_code == 0, first.output
    assert [c["selected"] for c in json.loads(first.stdout)["classes"]] == [2, 2, 2]
    assert set(images_in(tmp_path / "a")) == set(images_in(tmp_path / "b"))
    assert set(images_in(tmp_path / "a")) != set(images_in(tmp_path / "c"))
    labels = rows(tmp_path / "a" / "labels" / f"openimages-{SPLIT}-labels.csv")
    assert {r["ImageID"] for r in labels} == set(images_in(tmp_path / "a"))


def test_faults_are_retried_and_a_rerun_fetches_only_what_is_missing(
    mirror, fast_retries, tmp_path
):
    ids = sorted(served_images(mirror))
    mirror.unavailable[f"{SPLIT}/{ids[0]}.jpg"] = 2  # 503, 503, then the image
    mirror.unavailable["v5/class-descriptions-boxable.csv"] = 1
    mirror.resets[f"{SPLIT}/{ids[1]}.jpg"] = 1  # half the body, then a reset
    mirror.resets[f"v5/{SPLIT}-annotations-human-imagelabels-boxable.csv"] = 1
    dest = tmp_path / "oi"
    result = fetch(dest, "--classes", "Food", "--json")
    assert result.exit_code == 0, result.output
    assert images_in(dest) == served_images(mirror) and not partials(dest)
    assert mirror.requests[f"{SPLIT}/{ids[0]}.jpg"] == 3
    assert mirror.requests[f"{SPLIT}/{ids[1]}.jpg"] == 2
    before = dict(mirror.requests)
    again = fetch(dest, "--classes", "Food", "--json")
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    assert (report["fetched"], report["present"], report["downloaded"]) == (0, 12, [])
    asked = {p: n - before.get(p, 0) for p, n in mirror.requests.items() if n != before.get(p)}
    assert asked == {f"{SPLIT}/ffffffffffffffff.jpg": 1}, "only the missing image is asked again"


def test_an_image_that_keeps_failing_is_exit_1_and_the_rest_are_kept(
    mirror, fast_retries, tmp_path
):
    ids = sorted(served_images(mirror))
    mirror.unavailable[f"{SPLIT}/{ids[0]}.jpg"] = 100
    result = fetch(tmp_path / "oi", "--classes", "Food", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert [f["image_id"] for f in report["failed"]] == [ids[0]]
    assert "HTTP 503" in report["failed"][0]["reason"]
    assert "1 images could not be fetched" in result.stderr and "run the same command" in (
        result.stderr
    )
    assert set(images_in(tmp_path / "oi")) == set(ids[1:])


def test_a_server_that_does_not_answer_stops_the_fetch(mirror, fast_retries, monkeypatch, tmp_path):
    from idx.ops.openimages import images

    # Bound but not listening for the whole fetch: every connection is refused (Linux answers
    # with a reset), and no other process can take the port meanwhile, as it could once closed.
    with socket.socket() as deaf:
        deaf.bind(("127.0.0.1", 0))
        port = deaf.getsockname()[1]
        monkeypatch.setenv("IDX_OPENIMAGES_IMAGES", f"http://127.0.0.1:{port}/")
        monkeypatch.setattr(images, "GIVE_UP_AFTER", 3)
        result = fetch(tmp_path / "oi", "--classes", "Food", "--workers", 2)
    assert result.exit_code == 1 and result.stdout == ""
    assert f"the first 3 images asked for from http://127.0.0.1:{port}/ all failed" in (
        result.stderr
    )
    assert "ConnectionError" in result.stderr and not partials(tmp_path)


def test_a_client_refuses_what_is_too_large_or_not_a_jpeg(mirror, tmp_path):
    from idx.ops.openimages.transfer import TransferError

    image_id = sorted(served_images(mirror))[0]
    url = f"{mirror.url}{SPLIT}/{image_id}.jpg"
    with pytest.raises(TransferError, match="larger than"):
        Client(attempts=1).download(url, tmp_path / "a.jpg", max_bytes=100)
    mirror.files[f"{SPLIT}/{image_id}.jpg"] = b"<html>sorry</html>"
    result = fetch(tmp_path / "oi", "--classes", "Food", "--json")
    assert result.exit_code == 1 and "not a JPEG" in result.stderr
    assert not (tmp_path / "a.jpg").exists() and not partials(tmp_path)


def _mid_run(dest: Path, total: int) -> bool:
    """Some images landed, not nearly all, and one is being written."""
    return 2 <= len(images_in(dest)) < total - 1 and bool(partials(dest))


def _kill_mid_image(proc: subprocess.Popen, dest: Path, total: int) -> None:
    """SIGKILL the fetch at a moment it is mid-run (_mid_run): seen so once, it is stopped
    (SIGSTOP) and looked at again, and killed only if it still is (else it goes on), so the kill
    lands in the state checked however long this process took between the two."""
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if _mid_run(dest, total):
            os.kill(proc.pid, signal.SIGSTOP)
            if not wait_stopped(proc.pid):
                break  # it ended
            if _mid_run(dest, total):
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return
            os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.02)
    raise AssertionError(
        f"the fetch was never seen mid-image with 2 to {total - 2} images landed "
        f"(exit code {proc.poll()}, {len(images_in(dest))} landed)"
    )


def test_kill_9_leaves_no_partial_image_and_a_rerun_completes(tmp_path):
    with Mirror(tiny_mirror(per_class=6, size=256)) as slow:
        for path in slow.files:
            if path.endswith(".jpg"):
                slow.pauses[path] = 0.4  # each image stops half-way for a while
        env = {
            **os.environ,
            "PYTHONPATH": SRC,
            "IDX_OPENIMAGES_ANNOTATIONS": slow.url,
            "IDX_OPENIMAGES_IMAGES": slow.url,
        }
        dest = tmp_path / "oi"
        command = [sys.executable, "-m", "idx", "openimages", "fetch", str(dest)]
        command += ["--split", SPLIT, "--classes", "Food", "--workers", "4", "-q"]
        served = served_images(slow)
        proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            _kill_mid_image(proc, dest, len(served))
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        landed = images_in(dest)
        assert partials(dest), "killed while no image was being written: nothing was tested"
        assert 0 < len(landed) < len(served) - 1
        assert all(data == served[i] for i, data in landed.items()), "a partial image landed"
        slow.pauses.clear()
        rerun = subprocess.run(command + ["--json"], env=env, capture_output=True, text=True)
        assert rerun.returncode == 0, rerun.stderr
        assert json.loads(rerun.stdout)["present"] == len(landed)
        assert images_in(dest) == served and not partials(dest)


def test_images_from_s3(s3_bucket, monkeypatch, tmp_path):
    fs, bucket = s3_bucket
    files = tiny_mirror()
    for path, data in files.items():
        if path.endswith(".jpg"):
            fs.pipe(f"{bucket}/mirror/{path}", data)
    with Mirror({k: v for k, v in files.items() if not k.endswith(".jpg")}) as annotations:
        monkeypatch.setenv("IDX_OPENIMAGES_ANNOTATIONS", annotations.url)
        monkeypatch.setenv("IDX_OPENIMAGES_IMAGES", f"s3://{bucket}/mirror")
        result = fetch(tmp_path / "oi", "--classes", "Fruit,Cookie", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["fetched"], report["missing"]) == (12, ["ffffffffffffffff"])
    expected = {k.split("/")[1][:-4]: v for k, v in files.items() if k.endswith(".jpg")}
    assert images_in(tmp_path / "oi") == expected


def test_index_then_insights_rollup(mirror, tmp_path, tiny_args):
    index = tmp_path / "oi.idx"
    dest = tmp_path / "oi"
    result = fetch(dest, "--classes", "Food", "--index", index, *tiny_args, "--json")
    assert result.exit_code == 0, result.output
    done = json.loads(result.stdout)["index"]
    assert done["add"]["added"] == 12
    assert [(i["kind"], i["imported"]) for i in done["imports"]] == [
        ("classes", len(TINY_CLASSES)),
        ("labels", 24),
    ]
    assert done["hierarchy"]["is_a_edges"] == 5
    insights = CliRunner().invoke(
        cli, ["--index", str(index), "insights", "--rollup", "Fruit,Cookie", "--no-plots"]
    )
    assert insights.exit_code == 0, insights.output
    assert "Fruit" in insights.stdout and "Cookie" in insights.stdout
    again = fetch(dest, "--classes", "Food", "--index", index, *tiny_args, "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["index"]["add"]["unchanged"] == 12


def test_the_real_snacks_as_a_mirror(shared_data, monkeypatch, tmp_path, tiny_args):
    hierarchy = HIERARCHY / "bbox_labels_600_hierarchy.json"
    if not hierarchy.is_file():
        pytest.skip("../shared/data/openimages-hierarchy is not present")
    with Mirror(shared_mirror(shared_data, hierarchy)) as served:
        monkeypatch.setenv("IDX_OPENIMAGES_ANNOTATIONS", served.url)
        monkeypatch.setenv("IDX_OPENIMAGES_IMAGES", served.url)
        dest, index = tmp_path / "oi", tmp_path / "oi.idx"
        result = fetch(
            dest, "--classes", "Fruit,Dessert", "--limit", "60", "--boxes", "--index", index,
            *tiny_args, "--json",
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    fruit, dessert = report["classes"]
    assert "Apple" in fruit["subclasses"] and "Cookie" in dessert["subclasses"]
    assert (report["selected"], report["fetched"], report["missing"]) == (60, 60, [])
    assert abs(fruit["selected"] - dessert["selected"]) <= 2
    assert report["box_rows"]["images"] <= 60 and report["label_rows"]["negatives"] > 0
    assert report["index"]["add"]["added"] == 60
    insights = CliRunner().invoke(
        cli, ["--index", str(index), "insights", "--rollup", "Fruit,Dessert", "--no-plots"]
    )
    assert insights.exit_code == 0, insights.output
