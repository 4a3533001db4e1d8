"""Where Open Images' files are: the annotation files on Google Cloud Storage and the images in
the public S3 bucket, at the paths Open Images' download page (and FiftyOne) use. Both bases can
point at a mirror (IDX_OPENIMAGES_ANNOTATIONS, IDX_OPENIMAGES_IMAGES): http(s):// or s3:// URLs.

Only URLs of these shapes are ever built: a base the user set, then a fixed path, or a split and
an ImageID checked to be 16 hex digits, so nothing read from a file goes into a URL or a path
unchecked.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from idx import config
from idx.errors import UsageError

ANNOTATIONS = "https://storage.googleapis.com/openimages/"
IMAGES = "https://open-images-dataset.s3.amazonaws.com/"
SPLITS = ("train", "validation", "test")
SCHEMES = ("http", "https", "s3")

CLASSES = "v5/class-descriptions-boxable.csv"
HIERARCHY = "2018_04/bbox_labels_600_hierarchy.json"
IMAGE_ID = re.compile(r"[0-9a-f]{16}")


def labels(split: str) -> str:
    """The split's human-verified image-level labels (Confidence 1 present, 0 verified absent)."""
    return f"v5/{_split(split)}-annotations-human-imagelabels-boxable.csv"


def boxes(split: str) -> str:
    """The split's boxes; train's file was re-released with v6 under another name."""
    if _split(split) == "train":
        return "v6/oidv6-train-annotations-bbox.csv"
    return f"v5/{split}-annotations-bbox.csv"


def annotations_base() -> str:
    return _base("OPENIMAGES_ANNOTATIONS", ANNOTATIONS)


def images_base() -> str:
    return _base("OPENIMAGES_IMAGES", IMAGES)


def annotation_url(base: str, path: str) -> str:
    return base + path


def image_url(base: str, split: str, image_id: str) -> str:
    return f"{base}{_split(split)}/{checked_id(image_id)}.jpg"


def is_image_id(text: str) -> bool:
    return IMAGE_ID.fullmatch(text) is not None


def checked_id(image_id: str) -> str:
    if not is_image_id(image_id):
        raise ValueError(f"{image_id!r} is not an Open Images ImageID (16 hex digits)")
    return image_id


def _split(split: str) -> str:
    if split not in SPLITS:
        raise UsageError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    return split


def _base(name: str, default: str) -> str:
    """IDX_<name>, else `default`; an http(s):// or s3:// URL with a host, ending in '/'."""
    value = config.env(name) or default
    parts = urlsplit(value)
    if parts.scheme not in SCHEMES or not parts.netloc or parts.query or parts.fragment:
        raise UsageError(
            f"IDX_{name}={value!r} is not an http://, https:// or s3:// URL of a folder; unset it "
            f"or give one, e.g. {default}"
        )
    return value.rstrip("/") + "/"
