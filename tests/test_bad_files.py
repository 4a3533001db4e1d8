"""Bad files never stop a run: each is skipped with its reason, recorded, and reported."""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from idx.cli.main import cli
from idx.errors import DecodeError
from idx.indexer.files import decode
from idx.indexer.index import Index


def _jpeg_bytes(seed: int = 0, size=(64, 48)) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG")
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (a decompression bomb's calling card)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def bad_folder(tmp_path) -> Path:
    root = tmp_path / "bad"
    root.mkdir()
    (root / "good.jpg").write_bytes(_jpeg_bytes(1))
    (root / "truncated.jpg").write_bytes(_jpeg_bytes(2)[:300])
    (root / "empty.jpg").write_bytes(b"")
    (root / "text.jpg").write_text("this is not a picture\n")
    (root / "bomb.png").write_bytes(_png_header_only(40000, 40000))
    loop = root / "loop"
    loop.mkdir()
    (loop / "again").symlink_to(root, target_is_directory=True)
    (root / "dangling.jpg").symlink_to(root / "missing.jpg")
    return root


def test_every_bad_kind_is_skipped_with_a_reason(bad_folder, tiny_model):
    with Index(**tiny_model) as index:
        report = index.add([bad_folder])
        reasons = dict(report.skipped_files)
        assert report.added == 1
        root = str(bad_folder)
        assert "truncated" in reasons[f"{root}/truncated.jpg"].lower()
        assert "empty file" in reasons[f"{root}/empty.jpg"]
        assert "not an image" in reasons[f"{root}/text.jpg"]
        assert "decompression-bomb" in reasons[f"{root}/bomb.png"]
        assert "IDX_MAX_PIXELS" in reasons[f"{root}/bomb.png"]
        assert "loop" in reasons[f"{root}/loop/again"]
        assert "broken symbolic link" in reasons[f"{root}/dangling.jpg"]
        stored = dict(index.catalog.con.execute("SELECT path, reason FROM skipped").fetchall())
        assert stored == reasons
        # Unchanged bad files are reported again without being re-read, and nothing else changes.
        again = index.add([bad_folder])
        assert dict(again.skipped_files) == reasons and again.added == 0


def test_fixed_file_is_picked_up_and_leaves_the_skipped_table(bad_folder, tiny_model):
    with Index(**tiny_model) as index:
        index.add([bad_folder])
        (bad_folder / "text.jpg").write_bytes(_jpeg_bytes(9))
        report = index.add([bad_folder])
        assert report.added == 1
        paths = {r[0] for r in index.catalog.con.execute("SELECT path FROM skipped").fetchall()}
        assert str(bad_folder / "text.jpg") not in paths
        (bad_folder / "empty.jpg").unlink()
        index.add([bad_folder])
        paths = {r[0] for r in index.catalog.con.execute("SELECT path FROM skipped").fetchall()}
        assert str(bad_folder / "empty.jpg") not in paths


def test_indexed_file_that_turns_bad_is_removed_and_skipped(tmp_path, tiny_model):
    root = tmp_path / "imgs"
    root.mkdir()
    (root / "a.jpg").write_bytes(_jpeg_bytes(1))
    (root / "b.jpg").write_bytes(_jpeg_bytes(2))
    with Index(**tiny_model) as index:
        index.add([root])
        (root / "a.jpg").write_text("overwritten by a text editor")
        report = index.add([root])
        assert report.removed == 1 and report.skipped == 1
        assert index.catalog.images.count() == 1 and index.vectors.ntotal == 1


def test_file_vanishing_mid_run_is_skipped(tmp_path, tiny_model):
    root = tmp_path / "imgs"
    root.mkdir()
    for i in range(6):
        (root / f"{i}.jpg").write_bytes(_jpeg_bytes(i))
    victim = root / "3.jpg"

    def progress(event):
        if event.phase == "embed" and event.done == 0 and victim.exists():
            victim.unlink()  # after the walk saw it, before it is read

    with Index(**tiny_model) as index:
        report = index.add([root], progress=progress)
        assert report.added == 5
        assert dict(report.skipped_files)[str(victim)] == "file vanished before it could be read"


def test_unreadable_file_is_skipped(tmp_path, tiny_model):
    root = tmp_path / "imgs"
    root.mkdir()
    (root / "ok.jpg").write_bytes(_jpeg_bytes(1))
    locked = root / "locked.jpg"
    locked.write_bytes(_jpeg_bytes(2))
    locked.chmod(0)
    cmd = [
        sys.executable,
        "-m",
        "idx",
        "--index",
        str(tmp_path / "index"),
        "add",
        str(root),
        "--model",
        tiny_model["model"],
        "--checkpoint",
        tiny_model["checkpoint"],
        "--json",
    ]
    if os.geteuid() == 0:
        # root reads anything; without the DAC capabilities the permission bits apply to it too.
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: cannot make a file unreadable")
        cmd = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *cmd]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"skipping {locked}: permission denied" in result.stderr
    assert "chmod" in result.stderr


def test_cli_reports_skips_on_stderr_and_summary_on_stdout(bad_folder, tiny_args):
    result = CliRunner().invoke(cli, ["add", str(bad_folder), *tiny_args])
    assert result.exit_code == 0, result.output
    assert f"skipping {bad_folder}/text.jpg: not an image" in result.stderr
    assert "skipping" not in result.stdout
    assert "added 1," in result.stdout and "skipped 6" in result.stdout


def test_images_recognised_by_content_not_name(tmp_path, tiny_model):
    root = tmp_path / "imgs"
    root.mkdir()
    (root / "photo_without_extension").write_bytes(_jpeg_bytes(1))
    (root / "actually_png.jpg").write_bytes(_png_bytes())
    (root / "notes.txt").write_text("hello")
    with Index(**tiny_model) as index:
        report = index.add([root])
        assert (report.added, report.skipped) == (2, 0)
        formats = dict(index.catalog.con.execute("SELECT path, format FROM images").fetchall())
        assert formats[str(root / "actually_png.jpg")] == "PNG"
        assert formats[str(root / "photo_without_extension")] == "JPEG"


def _png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (30, 20), (1, 2, 3)).save(buf, format="PNG")
    return buf.getvalue()


# -- decoding of unusual but valid images -------------------------------------------------------


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (80, 40), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 40, 40))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    out = decode.decode(_encode(img, "JPEG", exif=exif.tobytes(), quality=95))
    assert (out.width, out.height) == (40, 80) and out.image.size == (40, 80)
    top = np.asarray(out.image)[5, 20]
    assert top[2] > 200 and top[0] < 60  # blue ends up on top after a 90-degree turn


@pytest.mark.parametrize(
    "make",
    [
        lambda: _encode(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "JPEG"),
        lambda: _encode(Image.new("P", (32, 32), 3), "PNG"),
        lambda: _encode(Image.new("RGBA", (32, 32), (255, 0, 0, 0)), "PNG"),
        lambda: _encode(Image.new("LA", (32, 32), (0, 128)), "PNG"),
        lambda: _encode(Image.fromarray(np.full((32, 32), 40000, np.uint16)), "PNG"),
        lambda: _encode(Image.new("1", (32, 32), 1), "TIFF"),
        lambda: _encode(Image.new("RGB", (32, 32), (9, 9, 9)), "WEBP"),
        lambda: _encode(Image.new("RGB", (32, 32), (9, 9, 9)), "BMP"),
    ],
    ids=["cmyk", "palette", "rgba", "la", "16bit", "1bit-tiff", "webp", "bmp"],
)
def test_unusual_modes_become_rgb(make):
    out = decode.decode(make())
    assert out.image.mode == "RGB" and out.image.size == (32, 32)


def test_transparent_pixels_become_white_and_16_bit_keeps_its_range():
    rgba = decode.decode(_encode(Image.new("RGBA", (8, 8), (255, 0, 0, 0)), "PNG"))
    assert np.asarray(rgba.image)[0, 0].tolist() == [255, 255, 255]
    grey = decode.decode(_encode(Image.fromarray(np.full((8, 8), 32896, np.uint16)), "PNG"))
    assert 120 <= np.asarray(grey.image)[0, 0, 0] <= 136  # mid-grey, not clipped to white


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    out = decode.decode(buf.getvalue())
    r, g, _ = np.asarray(out.image)[0, 0]
    assert r > 200 and g < 50


def test_large_jpeg_is_decoded_at_reduced_size_when_allowed():
    data = _jpeg_bytes(3, size=(2000, 1500))
    small = decode.decode(data, min_side=224)
    assert (small.width, small.height) == (2000, 1500)  # the stored size is the real one
    assert min(small.image.size) >= 224 and small.image.size[0] <= 500
    full = decode.decode(data)
    assert full.image.size == (2000, 1500)


def test_a_file_skipped_under_two_given_folders_is_recorded_once(images, tiny_model, tmp_path):
    sub = images / "sub"
    sub.mkdir()
    os.symlink(tmp_path / "nowhere.jpg", sub / "broken.jpg")
    with Index(tmp_path / "index", **tiny_model) as index:
        index.add([images, sub])  # overlapping folders: the walk meets the link twice
        rows = index.catalog.con.execute("SELECT path, reason FROM skipped").fetchall()
    assert rows == [(str(sub / "broken.jpg"), "broken symbolic link; fix or remove the link")]


def _png(width: int, height: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def pillow_limit(monkeypatch):
    """Pillow's limit as it was, back after the test: decode() sets it to IDX_MAX_PIXELS."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)


def test_a_file_skipped_for_its_pixels_is_added_once_the_limit_is_raised(
    tmp_path, tiny_args, monkeypatch, pillow_limit
):
    root = tmp_path / "photos"
    root.mkdir()
    (root / "small.jpg").write_bytes(_jpeg_bytes(1))  # 64 x 48
    (root / "big.png").write_bytes(_png(200, 200))  # over twice the limit: Pillow refuses it
    (root / "wide.png").write_bytes(_png(150, 100, 1))  # between the limit and twice it
    monkeypatch.setenv("IDX_MAX_PIXELS", "10000")
    # In a new process, where warnings print as they do for users (pytest records them instead).
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    cmd = [sys.executable, "-m", "idx", "add", str(root), *tiny_args]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "added 1," in first.stdout and "skipped 2" in first.stdout
    guard = "pixels (a decompression-bomb guard); if the file is trusted, raise the limit"
    assert [line for line in first.stderr.splitlines() if "pixels" in line] == [
        f"skipping {root}/big.png: 40000 pixels is above the limit of 10000 {guard} "
        "(IDX_MAX_PIXELS=40000) and run again",
        f"skipping {root}/wide.png: 150x100 = 15000 pixels is above the limit of 10000 {guard} "
        "(IDX_MAX_PIXELS=15000) and run again",
    ]
    assert "Warning" not in first.stderr  # Pillow's own, quoting its own figure
    unchanged = CliRunner().invoke(cli, ["add", str(root), *tiny_args])
    assert "added 0," in unchanged.stdout and "skipped 2" in unchanged.stdout
    monkeypatch.setenv("IDX_MAX_PIXELS", "50000")
    raised = CliRunner().invoke(cli, ["add", str(root), *tiny_args])
    assert raised.exit_code == 0, raised.output
    assert "added 2," in raised.stdout and "skipping" not in raised.stderr
    with Index(read_only=True) as index:
        assert index.sql("SELECT count(*) FROM skipped")[1] == [(0,)]
        assert index.sql("SELECT count(*) FROM images")[1] == [(3,)]


def test_a_limit_above_pillows_default_is_the_one_pillow_applies(monkeypatch, pillow_limit):
    header = _png_header_only(20000, 10000)  # 200 megapixels: over twice Pillow's default
    with pytest.raises(DecodeError, match="^200000000 pixels is above the limit of 89478485 "):
        decode.decode(header)
    monkeypatch.setenv("IDX_MAX_PIXELS", "300000000")
    # Past every size check, it fails only for holding 64 bytes of the 200 megapixels it claims.
    with pytest.raises(DecodeError, match="^corrupt or truncated image data"):
        decode.decode(header)
    assert Image.MAX_IMAGE_PIXELS == 300_000_000
