"""Which files are images: every raster format the installed Pillow opens, by name and by content.

The list is Pillow's own (`Image.registered_extensions()` and `Image.OPEN`), less the formats
Pillow only writes or only identifies (stubs that need a handler or an outside program), plus
HEIC/HEIF through the optional pillow-heif plugin. A file with a HEIC name or content is always a
candidate: without the plugin it is skipped with a reason that names the extra to install.
"""

from __future__ import annotations

import functools
import re

#: Pillow formats idx never takes: stubs that need a handler registered by the application
#: (BUFR, GRIB, HDF5, WMF/EMF), vector or video containers that Pillow identifies but cannot
#: render without an outside program (EPS needs Ghostscript, MPEG has no decoder), and
#: write-only ones (PDF, PALM).
NOT_RASTER = frozenset({"BUFR", "GRIB", "HDF5", "WMF", "EPS", "MPEG", "PDF", "PALM"})
#: Formats whose signature is too short or absent to recognise a file by its content alone
#: (a text file starting with a newline looks like PCX): these count only by extension.
WEAK_SIGNATURE = frozenset({"PCX", "ICO", "CUR", "TGA", "MCIDAS", "SPIDER", "IM", "IMT", "PCD"})
HEIF_EXTENSIONS = frozenset({".heic", ".heif", ".hif"})
HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"})
HEIF_EXTRA = "pip install 'idx-clip[heif]' (the pillow-heif plugin)"
#: Format (as the catalog stores it: images.format) -> (media type, file extension) of the formats
#: browsers show. Every other format is sent as application/octet-stream: a type is never taken
#: from a file's name, which a GIF named x.html would turn into a page.
MEDIA_TYPES = {
    "JPEG": ("image/jpeg", ".jpg"),
    "MPO": ("image/jpeg", ".jpg"),  # a JPEG with more pictures after the first
    "PNG": ("image/png", ".png"),
    "GIF": ("image/gif", ".gif"),
    "WEBP": ("image/webp", ".webp"),
    "AVIF": ("image/avif", ".avif"),
    "BMP": ("image/bmp", ".bmp"),
    "DIB": ("image/bmp", ".bmp"),
    "ICO": ("image/x-icon", ".ico"),
    "TIFF": ("image/tiff", ".tif"),
    "JPEG2000": ("image/jp2", ".jp2"),
    "HEIF": ("image/heif", ".heic"),
}


@functools.cache
def _pillow() -> tuple[dict[str, str], tuple]:
    """(extension -> format, accept functions) of the raster formats Pillow opens here."""
    from PIL import Image  # here, not at import: `idx status` and `idx sql` need no Pillow

    register_heif()
    Image.init()
    extensions = {
        ext.lower(): fmt
        for ext, fmt in Image.registered_extensions().items()
        if fmt in Image.OPEN and fmt not in NOT_RASTER
    }
    accepts = tuple(
        (fmt, accept)
        for fmt, (_, accept) in Image.OPEN.items()
        if accept is not None and fmt not in NOT_RASTER | WEAK_SIGNATURE
    )
    return extensions, accepts


def image_extensions() -> frozenset[str]:
    """Lower-case extensions (with the dot) taken as images, HEIC/HEIF included."""
    return frozenset(_pillow()[0]) | HEIF_EXTENSIONS


def formats() -> dict[str, list[str]]:
    """Format name -> its extensions, as `idx add --help` and the README list them."""
    out: dict[str, list[str]] = {}
    for ext, fmt in sorted(_pillow()[0].items()):
        out.setdefault(fmt, []).append(ext)
    if not register_heif():
        out["HEIF"] = sorted(HEIF_EXTENSIONS)
    return dict(sorted(out.items()))


def media_type(fmt: str) -> str:
    """The media type to send a file whose content is `fmt` with (never one from its name)."""
    return MEDIA_TYPES[fmt][0] if fmt in MEDIA_TYPES else "application/octet-stream"


def file_name(fmt: str, name: str) -> str:
    """A name to offer for a file `name` whose content is `fmt`: its stem in letters, digits and
    `._-`, with the format's extension (a format browsers do not show keeps the image extension
    it had, else gets .bin)."""
    stem, _, ext = name.rpartition(".")
    if not stem:  # no extension, or a name such as ".hidden"
        stem, ext = name, ""
    if fmt in MEDIA_TYPES:
        ext = MEDIA_TYPES[fmt][1]
    else:
        ext = f".{ext.lower()}" if f".{ext.lower()}" in image_extensions() else ".bin"
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", stem)[:100].lstrip(".")
    return (safe or "image") + ext


def sniff(head: bytes) -> str | None:
    """The image format named by a file's first 16 bytes (what Pillow reads to decide), or None."""
    if is_heif(head):
        return "HEIF"
    for fmt, accept in _pillow()[1]:
        try:
            if accept(head):
                return fmt
        except Exception:  # noqa: BLE001 - a plugin's check must not stop the walk
            continue
    return None


def is_heif(head: bytes) -> bool:
    return head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS


@functools.cache
def register_heif() -> bool:
    """Register pillow-heif's opener when the plugin is installed; whether it is."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return False
    register_heif_opener()
    return True


if __name__ == "__main__":
    # `python -m idx.indexer.files.formats` prints the README's generated list (paste it over the block
    # between the <!-- formats --> markers; tests/test_formats.py checks it against this Pillow).
    import textwrap

    from PIL import __version__ as pillow_version

    listed = formats()
    listed["HEIF"] = sorted(set(listed.get("HEIF", [])) | HEIF_EXTENSIONS)
    glue = "\0"  # holds a format's name and extensions together when the line is wrapped
    items = [glue.join([fmt, *(f"`{e}`" for e in exts)]) for fmt, exts in listed.items()]
    text = textwrap.fill("; ".join(items) + ".", 100, break_long_words=False)
    print("<!-- formats -->")
    print(f"Read by Pillow {pillow_version} (HEIF with the `heif` extra):")
    print(text.replace(glue, " "))
    print("<!-- /formats -->")
