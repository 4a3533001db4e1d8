"""Which files `add` takes: every raster format Pillow opens (by name and by content), HEIC through
the optional plugin, hidden files and folders, and --exclude rules stored with the folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from idx.errors import UsageError
from idx.indexer.files import formats
from idx.indexer.index import Index

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()

#: (file name, Pillow mode) for every format this Pillow both writes and we read: the test
#: writes each one and expects it indexed. The PNM family and JPEG 2000 were ignored before.
WRITTEN = [
    ("a.jpg", "RGB"),
    ("a.png", "RGB"),
    ("a.gif", "RGB"),
    ("a.webp", "RGB"),
    ("a.bmp", "RGB"),
    ("a.tif", "RGB"),
    ("a.ppm", "RGB"),
    ("a.pgm", "L"),
    ("a.pbm", "1"),
    ("a.jp2", "RGB"),
    ("a.avif", "RGB"),
    ("a.qoi", "RGB"),
    ("a.tga", "RGB"),
    ("a.dds", "RGB"),
    ("a.ico", "RGB"),
    ("a.icns", "RGB"),
    ("a.pcx", "RGB"),
    ("a.sgi", "RGB"),
    ("a.msp", "1"),
    ("a.xbm", "1"),
]


def _picture(path: Path, mode: str = "RGB", seed: int = 0, fmt: str | None = None) -> Path:
    colour = (40 + seed * 30 % 200, 120, 200 - seed * 17 % 150)
    image = Image.new("RGB", (64, 48), colour)
    image.paste((255 - colour[0], 20, 20), (8 + seed % 20, 8, 40, 30))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.convert(mode).save(path, format=fmt)
    return path


def _indexed(index_dir: Path, root: Path) -> set[str]:
    with Index(index_dir, read_only=True) as index:
        return {os.path.relpath(p, root) for p in index.catalog.images.all_paths().values()}


@pytest.fixture
def tree(tmp_path) -> Path:
    root = tmp_path / "photos"
    for i, (name, mode) in enumerate(WRITTEN):
        _picture(root / "formats" / name, mode, seed=i)
    _picture(root / "no-extension-jpeg", seed=40, fmt="JPEG")
    _picture(root / "sniffed.download", seed=46, fmt="PNG")
    (root / "notes.txt").write_text("not an image\n")
    _picture(root / ".hidden.jpg", seed=41)
    _picture(root / ".cache" / "thumb.jpg", seed=42)
    _picture(root / "album" / "keep.jpg", seed=43)
    _picture(root / "album" / "thumbnails" / "small.jpg", seed=44)
    _picture(root / "album" / "draft.tmp.jpg", seed=45)
    return root


def test_every_format_is_indexed_and_hidden_and_excluded_paths_are_not(tree, tmp_path, tiny_model):
    index_dir = tmp_path / "index"
    with Index(index_dir, **tiny_model) as index:
        report = index.add([tree], exclude=["*/thumbnails/*", "*.tmp.jpg"])
    expected = {f"formats/{name}" for name, _ in WRITTEN}
    expected |= {"no-extension-jpeg", "sniffed.download", "album/keep.jpg"}
    assert _indexed(index_dir, tree) == expected
    assert report.skipped == 0 and report.added == len(expected)


def test_rules_are_stored_kept_and_a_new_rule_removes_what_it_leaves_out(
    tree, tmp_path, tiny_model
):
    index_dir = tmp_path / "index"
    with Index(index_dir, **tiny_model) as index:
        first = index.add([tree], include_hidden=True)
    assert {".hidden.jpg", ".cache/thumb.jpg", "album/thumbnails/small.jpg"} <= _indexed(
        index_dir, tree
    )
    assert first.added == len(WRITTEN) + 7
    with Index(index_dir, **tiny_model) as index:
        again = index.add([tree])  # no flags: the stored rules (hidden taken) apply
        assert (again.added, again.removed, again.unchanged) == (0, 0, first.added)
        narrowed = index.add([tree], include_hidden=False, exclude=["thumbnails"])
        assert narrowed.removed == narrowed.excluded == 3
        rules = index.status()["folders"][str(tree)]
    assert rules == {"include_hidden": False, "excludes": ["thumbnails"]}
    indexed = _indexed(index_dir, tree)
    assert not any(p.startswith(".") or "thumbnails" in p for p in indexed)
    assert "album/keep.jpg" in indexed
    with Index(index_dir, **tiny_model) as index:
        assert index.add([tree]).added == 0  # the narrowed rules stay


def test_a_hidden_folder_given_explicitly_is_taken(tree, tmp_path, tiny_model):
    with Index(tmp_path / "index", **tiny_model) as index:
        report = index.add([tree / ".cache"])
    assert report.added == 1


def test_readme_lists_the_formats_pillow_reports():
    listed = re.search(r"<!-- formats -->(.*?)<!-- /formats -->", README, re.S)
    assert listed, "README has no generated formats list between <!-- formats --> markers"
    for fmt, extensions in formats.formats().items():
        assert fmt in listed.group(1), f"README's format list lacks {fmt}"
        for ext in extensions:
            assert ext in listed.group(1), f"README's format list lacks {ext} ({fmt})"


def test_not_raster_formats_are_not_candidates():
    exts = formats.image_extensions()
    assert not {".pdf", ".eps", ".h5", ".grib", ".bufr", ".wmf", ".mpg"} & exts
    assert {".ppm", ".pgm", ".pbm", ".jp2", ".avif", ".qoi", ".tga", ".heic"} <= exts


pillow_heif = pytest.importorskip("pillow_heif", reason="pip install pillow-heif (the heif extra)")


def _heic(path: Path) -> Path:
    pillow_heif.register_heif_opener()
    return _picture(path, fmt="HEIF")


def test_heic_is_indexed_with_the_plugin(tmp_path, tiny_model):
    root = tmp_path / "phone"
    _heic(root / "IMG_0001.heic")
    _heic(root / "IMG_0002.heif")
    with Index(tmp_path / "index", **tiny_model) as index:
        report = index.add([root])
    assert report.added == 2 and report.skipped == 0


def test_heic_without_the_plugin_is_skipped_naming_the_extra(tmp_path, tiny_model):
    root = tmp_path / "phone"
    _heic(root / "IMG_0001.heic")
    _picture(root / "IMG_0002.jpg")
    # A fresh interpreter in which pillow_heif cannot be imported: the state of a user without
    # the extra (the test's own interpreter has it loaded).
    code = (
        "import sys; sys.modules['pillow_heif'] = None\n"
        "from idx.indexer.index import Index\n"
        f"with Index({str(tmp_path / 'index')!r}, model={tiny_model['model']!r}, "
        f"checkpoint={tiny_model['checkpoint']!r}) as index:\n"
        f"    r = index.add([{str(root)!r}])\n"
        "print(r.added, r.skipped_files)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("1 ")
    assert "IMG_0001.heic" in out.stdout and "idx-clip[heif]" in out.stdout


def test_excludes_match_as_gitignore_lines(tmp_path, tiny_model):
    """Issue 24: `--exclude "*/thumbnails/*"` kept photos/thumbnails/* (the README said it left
    thumbnails out). Patterns now mean what they mean in a .gitignore file."""
    root = tmp_path / "photos"
    for i, rel in enumerate(
        [
            "thumbnails/a.jpg",
            "album/thumbnails/b.jpg",
            "album/2024/thumbnails/c.jpg",
            "raw/d.jpg",
            "album/raw/e.jpg",
            "album/keep.jpg",
            "album/draft.tmp.jpg",
        ]
    ):
        _picture(root / rel, seed=60 + i)
    for patterns in (["thumbnails/", "/raw", "*.tmp.jpg"], ["**/thumbnails", "/raw/", "*.tmp.*"]):
        index_dir = tmp_path / f"index-{patterns[0].strip('*/')}"
        with Index(index_dir, **tiny_model) as index:
            index.add([root], exclude=patterns)
        assert _indexed(index_dir, root) == {"album/keep.jpg", "album/raw/e.jpg"}, patterns
    with Index(tmp_path / "bad", **tiny_model) as index, pytest.raises(UsageError) as bad:
        index.add([root], exclude=["!"])
    assert "'!'" in str(bad.value) and ".gitignore" in str(bad.value)
