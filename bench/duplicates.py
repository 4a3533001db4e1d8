"""`idx duplicates --across A B` on leaked copies (issue 23): recall and precision of the pairs it
finds with CLIP alone, the perceptual hash alone and both, for the tiny model and a random-weight
ViT-B-32, on the real Open Images snacks photos.

Set A holds the first half of the photos; set B an altered copy of `--copies` of A's photos (in
turn resized to half, cropped by 2% a side, brightened by 30%, re-encoded at JPEG quality 40:
tests/near_copies.py) and the other half of the photos. A true pair is a copy and its source;
recall is the share of true pairs found (also per alteration), precision the share of found pairs
that are true. Thresholds are the defaults (CLIP 0.97 alone, 0.9 with the hash; hash within 10
bits), and a few others to show the trade.

    .venv/bin/python bench/duplicates.py                     # 955 photos, 200 copies, both models
    .venv/bin/python bench/duplicates.py --photos 300 --copies 80 --models tiny
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from common import OUT, ROOT, dump, shared_photos, tiny_random, vit_b32_random

sys.path.insert(0, str(ROOT))  # tests/near_copies.py, the copies the tests make

from idx.indexer.index import Index  # noqa: E402
from idx.ops.leakage import leakage  # noqa: E402
from tests.near_copies import ALTERATIONS, write_copies  # noqa: E402

#: (label, by, threshold, max_distance): None takes the default
SETTINGS = [
    ("CLIP alone (0.97)", "clip", None, None),
    ("CLIP alone (0.99)", "clip", 0.99, None),
    ("hash alone (<= 10 bits)", "hash", None, None),
    ("hash alone (<= 6 bits)", "hash", None, 6),
    ("hash alone (<= 14 bits)", "hash", None, 14),
    ("both (0.9 and <= 10 bits)", "both", None, None),
]
MODELS = {"tiny": tiny_random, "vit-b-32-random": vit_b32_random}


def make_sets(photos: list[Path], copies: int, root: Path) -> dict[str, str]:
    """Folders A and B under `root`; copy path -> its alteration, for the true pairs."""
    if root.exists():
        shutil.rmtree(root)
    a, b = root / "A", root / "B"
    half = len(photos) // 2
    a.mkdir(parents=True)
    for photo in photos[:half]:
        shutil.copy(photo, a)
    made = write_copies(photos[:copies], b)
    for photo in photos[half:]:
        shutil.copy(photo, b)
    return {str(copy): str(a / source.name) for copy, source in made.items()}


def measure(index: Index, a: Path, b: Path, truth: dict[str, str]) -> list[dict]:
    rows = []
    for label, by, threshold, distance in SETTINGS:
        start = time.perf_counter()
        found = leakage(index, str(a), str(b), by=by, threshold=threshold, max_distance=distance,
                        store=False)  # fmt: skip
        seconds = time.perf_counter() - start
        pairs = {(p.b_path, p.a_path) for p in found.pairs}
        true = {(copy, source) for copy, source in truth.items()}
        hits = pairs & true
        per = {
            name: sum(1 for c, _ in hits if c.endswith(f"-{name}.jpg"))
            / max(1, sum(1 for c in truth if c.endswith(f"-{name}.jpg")))
            for name in ALTERATIONS
        }
        rows.append(
            {
                "setting": label,
                "pairs": len(pairs),
                "recall": len(hits) / len(true),
                "precision": len(hits) / len(pairs) if pairs else None,
                "recall_by_alteration": per,
                "seconds": round(seconds, 3),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=955)
    parser.add_argument("--copies", type=int, default=200)
    parser.add_argument("--models", default="tiny,vit-b-32-random")
    args = parser.parse_args()
    photos = shared_photos(args.photos)
    root = OUT / "duplicates"
    truth = make_sets(photos, min(args.copies, len(photos) // 2), root / "sets")
    print(
        f"A: {len(photos) // 2} photos; B: {len(truth)} altered copies of A's photos and "
        f"{len(photos) - len(photos) // 2} other photos"
    )
    results = {}
    for name in args.models.split(","):
        kw = MODELS[name]()
        index_dir = root / f"index-{name}"
        shutil.rmtree(index_dir, ignore_errors=True)
        with Index(index_dir, **kw) as index:
            start = time.perf_counter()
            index.add([root / "sets"])
            added = time.perf_counter() - start
            rows = measure(index, root / "sets" / "A", root / "sets" / "B", truth)
        results[name] = {"add_seconds": round(added, 1), "rows": rows}
        print(f"\n## {name} (add {added:.0f} s)")
        print(f"{'setting':28} {'pairs':>6} {'recall':>7} {'precision':>9}  recall by alteration")
        for r in rows:
            precision = "-" if r["precision"] is None else f"{r['precision']:.3f}"
            per = ", ".join(f"{k} {v:.2f}" for k, v in r["recall_by_alteration"].items())
            print(f"{r['setting']:28} {r['pairs']:>6} {r['recall']:>7.3f} {precision:>9}  {per}")
    dump("duplicates", {"photos": len(photos), "copies": len(truth), "models": results})


if __name__ == "__main__":
    main()
