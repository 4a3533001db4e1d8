"""Start-up cost (issue 12): wall time of `idx search --text` on a 1,000-image index (tiny model)
and of `idx add` of one photo with ViT-B-32 (random weights: the time to its first embedding),
for this checkout and for an earlier revision, runs interleaved so that drift cancels.

    .venv/bin/python bench/startup.py [--baseline e59a5f2] [--runs 3]

The baseline runs from a temporary `git worktree` of that revision with this virtualenv
(its own source on PYTHONPATH). Prints medians and the ratio after / before. Both start with an
empty model cache (IDX_CACHE): this checkout's first `add` of each model prepares its text tower
there once (indexer/model/text_tower.py), which the first ViT-B-32 add's time shows apart.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, shared_photos, tiny_random, vit_b32_random


def _idx(src: Path, cache: Path, *args: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(src), "HF_HUB_OFFLINE": "1", "IDX_CACHE": str(cache)}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "idx", *args],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default="e59a5f2")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    from idx import synthetic

    tiny, vit = tiny_random(), vit_b32_random()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        base = tmp_path / "baseline"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(base), args.baseline],
            check=True,
        )
        try:
            trees = {"before": base / "src", "after": ROOT / "src"}
            caches = {name: tmp_path / f"cache-{name}" for name in trees}
            images = tmp_path / "images"
            synthetic.generate(images, per_category=125, size=48)
            one = tmp_path / "one"
            one.mkdir()
            shutil.copy(shared_photos(1)[0], one)
            tiny_flags = ["--model", tiny["model"], "--checkpoint", tiny["checkpoint"]]
            for name, src in trees.items():  # each revision builds its own 1,000-image index
                _idx(
                    src,
                    caches[name],
                    "--index",
                    str(tmp_path / f"index-{name}"),
                    "add",
                    str(images),
                    "-q",
                    *tiny_flags,
                )
            times: dict[str, dict[str, list[float]]] = {n: {"search": [], "add": []} for n in trees}
            for _ in range(args.runs):
                for name, src in trees.items():
                    times[name]["search"].append(
                        _idx(
                            src,
                            caches[name],
                            "--index",
                            str(tmp_path / f"index-{name}"),
                            "search",
                            "--text",
                            "red circles",
                            "-k",
                            "5",
                        )
                    )
                    target = tmp_path / f"add-{name}"
                    shutil.rmtree(target, ignore_errors=True)
                    times[name]["add"].append(
                        _idx(
                            src,
                            caches[name],
                            "--index",
                            str(target),
                            "add",
                            str(one),
                            "-q",
                            "--model",
                            vit["model"],
                            "--checkpoint",
                            vit["checkpoint"],
                        )
                    )
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)])
    print(f"\n## start-up, median of {args.runs} runs, before = {args.baseline}, after = this tree")
    for what, label, target in (
        ("search", "idx search --text, 1,000 images, tiny model", "target < 1.5 s"),
        ("add", "idx add of 1 photo, ViT-B-32 (first embedding)", "target: halved"),
    ):
        before = statistics.median(times["before"][what])
        after = statistics.median(times["after"][what])
        print(
            f"{label}: before {before:.2f} s, after {after:.2f} s, after/before "
            f"{after / before:.2f} ({target})"
        )
    print(
        f"first ViT-B-32 add of each (an empty cache): before {times['before']['add'][0]:.2f} s, "
        f"after {times['after']['add'][0]:.2f} s (after: also prepares the text tower, once)"
    )


if __name__ == "__main__":
    main()
