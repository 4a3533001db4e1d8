"""A picture's perceptual hash (pHash): 64 bits that change little when the picture is resized,
re-encoded, brightened or lightly cropped, and a lot between two different photos, with no model.

CLIP's cosine links two different photos of one scene as readily as two copies of one photo (and
an untrained model links everything); `idx duplicates` confirms a near-duplicate with the hash's
Hamming distance, as image deduplication tools do (imagededup, fastdup). The hash is imagehash's
`phash` (8x8 low frequencies of the DCT of a 32x32 grey image, each bit: above their median), kept
as one unsigned 64-bit integer, its first bit the highest: `int(str(imagehash.phash(image)), 16)`.
"""

from __future__ import annotations

import logging

import imagehash
import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

#: Bits in a hash: the largest Hamming distance between two.
BITS = 64


def phash(image: Image.Image) -> int | None:
    """The pHash of a decoded picture as an unsigned 64-bit integer; None (logged) when it cannot
    be computed, which costs the image its hash, not its place in the index."""
    try:
        bits = imagehash.phash(image).hash.ravel()
    except Exception:  # noqa: BLE001 - a hash is an extra: it must never skip an image
        log.warning(
            "no perceptual hash for a %s image of %s", image.mode, image.size, exc_info=True
        )
        return None
    return int(np.packbits(bits).view(">u8")[0])
