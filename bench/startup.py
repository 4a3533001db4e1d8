"""Start-up and memory of whole commands in new processes (issues 12 and 24): this tree against
a baseline revision, and rclip 3.3.0 with the same weights when given, runs interleaved so that
drift cancels. Random ViT-B-32 weights (real speed), real Open Images photos.

- queries: `idx search --text` and `--image` on an index of 852 photos: median wall and CPU
  time of --runs runs, median peak RSS; rclip's `--no-indexing` query beside them;
- first: on an empty model cache, the first `add` of those photos (it prepares the ONNX
  towers) and the first text query of the model (it prepares the text tower): time, peak RSS,
  and the notes it printed;
- int8: `add --precision int8` of 300 photos into a new index, against fp32: timings.start,
  wall, peak RSS (towers prepared; the first int8 add, which builds the int8 tower, apart).

    .venv/bin/python bench/startup.py                                  # vs faad991, ~15 min
    .venv/bin/python bench/startup.py --rclip /tmp/rclip-venv/bin/rclip --parts queries
    (python3 -m venv /tmp/rclip-venv && /tmp/rclip-venv/bin/pip install rclip==3.3.0)

The baseline runs from a temporary `git worktree` of that revision with this virtualenv (its
own source on PYTHONPATH), each revision with its own model cache (IDX_CACHE). rclip gets the
same checkpoint exported to its two ONNX files (its ViT-B-32-256 layout: the position
embedding resized by open_clip's loader) in its own data folder (RCLIP_DATADIR). Peak RSS is
the child's own (ru_maxrss through a small launcher: a child forked from this process would
inherit this process's peak). Prints the issue's figures beside the ones measured here.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from common import ROOT, link_files, shared_photos, vit_b32_random

#: Forks and execs the command, then prints its wall time, CPU time and peak RSS on stderr.
LAUNCHER = """
import os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
sys.stderr.write(f"\\nBENCH {wall} {usage.ru_utime + usage.ru_stime} {usage.ru_maxrss}\\n")
sys.exit(os.waitstatus_to_exitcode(status))
"""
#: The issue's figures (issue 24, 2 cores, 852 photos, random ViT-B-32 weights).
ISSUE = {
    "text query": "1.68 s, 531 MB (rclip 1.22 s, 446 MB)",
    "image query": "1.55 s (rclip 1.30 s)",
    "first add": "74.9 s (later adds ~50 s), 2.67 GB",
    "first text query": "11.0 s, 2.79 GB",
    "int8 start": "6.1 s (fp32 1.0 s), 1.1-1.4x end to end",
}


@dataclass
class Run:
    wall: float
    cpu: float
    rss_mb: float
    out: str
    err: str


def measure(command: list[str], env: dict[str, str], cwd: Path | None = None) -> Run:
    done = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *command],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    *err, last = done.stderr.rstrip("\n").split("\n")
    _, wall, cpu, rss_kb = last.split()
    return Run(float(wall), float(cpu), int(rss_kb) / 1024, done.stdout, "\n".join(err))


class Tree:
    """One revision of idx: its source, its model cache, its indexes."""

    def __init__(self, name: str, src: Path, tmp: Path, model: dict[str, str]):
        self.name, self.src, self.tmp, self.model = name, src, tmp, model
        self.cache = tmp / f"cache-{name}"
        self.index = tmp / f"index-{name}"

    def idx(self, *args: str, cache: Path | None = None) -> Run:
        env = {
            **os.environ,
            "PYTHONPATH": str(self.src),
            "HF_HUB_OFFLINE": "1",
            "IDX_CACHE": str(cache or self.cache),
        }
        return measure([sys.executable, "-m", "idx", *args], env)

    def add(self, index: Path, photos: Path, *flags: str) -> Run:
        model = ["--model", self.model["model"], "--checkpoint", self.model["checkpoint"]]
        return self.idx("--index", str(index), "add", str(photos), *model, "-q", "--json", *flags)

    def search(self, flag: str, query: str, cache: Path | None = None) -> Run:
        return self.idx("--index", str(self.index), "search", flag, query, "-k", "5", cache=cache)


class Rclip:
    """rclip 3.3.0 (its own virtualenv) on the same photos and weights."""

    def __init__(self, executable: str, tmp: Path, photos: Path, checkpoint: str):
        self.executable, self.photos = executable, photos
        self.data = tmp / "rclip-data"
        _rclip_models(self.data, checkpoint)
        self.env = {**os.environ, "RCLIP_DATADIR": str(self.data), "HF_HUB_OFFLINE": "1"}
        self.index_run = self.query("a red apple", indexing=True)

    def query(self, query: str, indexing: bool = False) -> Run:
        flags = [] if indexing else ["--no-indexing"]
        return measure([self.executable, *flags, "-t", "5", query], self.env, cwd=self.photos)


def _rclip_models(data: Path, checkpoint: str) -> None:
    """The checkpoint as rclip's textual.onnx and visual.onnx, and open_clip's vocabulary."""
    import warnings

    import open_clip
    import torch

    folder = data / "ViT-B-32-256-datacomp_s34b_b86k"
    folder.mkdir(parents=True, exist_ok=True)
    (data / "tokenizer").mkdir(exist_ok=True)
    vocabulary = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    shutil.copy(vocabulary, data / "tokenizer")
    model = open_clip.create_model("ViT-B-32-256", pretrained=checkpoint, weights_only=True)

    class Text(torch.nn.Module):
        def __init__(self, clip: torch.nn.Module):
            super().__init__()
            self.clip = clip

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            return self.clip.encode_text(tokens)

    axes = {"input": {0: "batch"}, "output": {0: "batch"}}
    for module, example, name in (
        (model.visual, torch.zeros(1, 3, 256, 256), "visual.onnx"),
        (Text(model), torch.zeros(1, 77, dtype=torch.long), "textual.onnx"),
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module.eval(),
                (example,),
                str(folder / name),
                input_names=["input"],
                output_names=["output"],
                dynamic_axes=axes,
                dynamo=False,
                opset_version=17,
            )


def _median(runs: list[Run], field: str) -> float:
    return statistics.median(getattr(r, field) for r in runs)


def _row(label: str, runs: dict[str, list[Run]], issue: str, base: str = "before") -> None:
    cells = []
    for name, got in runs.items():
        wall, cpu, rss = (_median(got, f) for f in ("wall", "cpu", "rss_mb"))
        cells.append(f"{name} {wall:.2f} s (cpu {cpu:.2f} s) {rss:.0f} MB")
    ratios = []
    if "after" in runs:
        for other in (base, "rclip"):
            if other in runs:
                wall = _median(runs["after"], "wall") / _median(runs[other], "wall")
                rss = _median(runs["after"], "rss_mb") / _median(runs[other], "rss_mb")
                ratios.append(f"after/{other} {wall:.2f}x time, {rss:.2f}x RSS")
    print(f"{label}: " + "; ".join(cells))
    print(f"    {'; '.join(ratios)}   [issue: {issue}]")


def queries(trees: list[Tree], rclip: Rclip | None, photo: Path, runs: int) -> None:
    for flag, query, label in (
        ("--text", "a red apple", "text query"),
        ("--image", str(photo), "image query"),
    ):
        got: dict[str, list[Run]] = {t.name: [] for t in trees}
        if rclip is not None:
            got["rclip"] = []
        for _ in range(runs):
            for tree in trees:
                got[tree.name].append(tree.search(flag, query))
            if rclip is not None:
                got["rclip"].append(rclip.query(query))
        _row(f"{label} from a new process, median of {runs}", got, ISSUE[label])


def first(trees: list[Tree], photos: Path) -> None:
    """The first add (towers prepared) against a later one, and, on another empty cache, the
    first text query."""
    adds: dict[str, list[Run]] = {}
    later: dict[str, list[Run]] = {}
    queries_: dict[str, list[Run]] = {}
    for tree in trees:
        shutil.rmtree(tree.cache, ignore_errors=True)
        adds[tree.name] = [tree.add(tree.index, photos)]
        later[tree.name] = [tree.add(tree.tmp / f"again-{tree.name}", photos)]
        notes = [line for line in adds[tree.name][0].err.splitlines() if "preparing" in line]
        timings = json.loads(adds[tree.name][0].out)["timings"]
        print(f"{tree.name}: first add's timings {timings}; its notes: {notes or 'none'}")
        fresh = tree.tmp / f"cache-first-query-{tree.name}"
        queries_[tree.name] = [tree.search("--text", "a red apple", cache=fresh)]
    _row(f"first add of {photos.name} on an empty cache", adds, ISSUE["first add"])
    _row(f"a later add of {photos.name} (new index)", later, ISSUE["first add"])
    _row("first text query of the model on an empty cache", queries_, ISSUE["first text query"])


def int8(trees: list[Tree], photos: Path, runs: int) -> None:
    def start(run: Run) -> float:
        return float(json.loads(run.out)["timings"]["start"])

    for tree in trees:
        built = tree.add(tree.tmp / f"int8-first-{tree.name}", photos, "--precision", "int8")
        print(
            f"{tree.name}: first int8 add (builds the int8 tower) {built.wall:.1f} s, "
            f"start {start(built):.2f} s, {built.rss_mb:.0f} MB"
        )
    got: dict[str, dict[str, list[Run]]] = {t.name: {"fp32": [], "int8": []} for t in trees}
    for i in range(runs):
        for tree in trees:
            for precision in ("fp32", "int8"):
                index = tree.tmp / f"{precision}-{tree.name}-{i}"
                got[tree.name][precision].append(tree.add(index, photos, "--precision", precision))
    for tree in trees:
        fp32, q8 = got[tree.name]["fp32"], got[tree.name]["int8"]
        wall = {"fp32": _median(fp32, "wall"), "int8": _median(q8, "wall")}
        print(
            f"{tree.name}: add of {photos.name}, median of {runs}: start fp32 "
            f"{statistics.median(map(start, fp32)):.2f} s, int8 "
            f"{statistics.median(map(start, q8)):.2f} s; end to end fp32 {wall['fp32']:.1f} s, "
            f"int8 {wall['int8']:.1f} s ({wall['fp32'] / wall['int8']:.2f}x); peak fp32 "
            f"{_median(fp32, 'rss_mb'):.0f} MB, int8 {_median(q8, 'rss_mb'):.0f} MB"
        )
    print(f"    [issue: {ISSUE['int8 start']}]")
    if len(trees) == 2:
        before, after = (got[t.name]["int8"] for t in trees)
        ratio = statistics.median(map(start, after)) / statistics.median(map(start, before))
        print(f"    int8 start after/before {ratio:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default="faad991", help="revision to compare with ('' none)")
    ap.add_argument("--photos", type=int, default=852, help="photos in the queries' index")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--int8-runs", type=int, default=3)
    ap.add_argument("--rclip", help="rclip 3.3.0's executable, in a virtualenv of its own")
    ap.add_argument("--parts", nargs="+", default=["first", "queries", "int8"])
    args = ap.parse_args()

    model = vit_b32_random()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        photos = link_files(shared_photos(args.photos), tmp / f"photos{args.photos}")
        small = link_files(shared_photos(300), tmp / "photos300")
        trees = [Tree("after", ROOT / "src", tmp, model)]
        base = tmp / "baseline"
        if args.baseline:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(base)]
                + [args.baseline],
                check=True,
            )
            trees.insert(0, Tree("before", base / "src", tmp, model))
        try:
            print(f"## start-up, before = {args.baseline or '-'}, after = this tree")
            if "first" in args.parts or "queries" in args.parts:
                first(trees, photos)  # builds the indexes the queries read
            if "queries" in args.parts:
                rclip = Rclip(args.rclip, tmp, photos, model["checkpoint"]) if args.rclip else None
                if rclip is not None:
                    print(f"rclip: indexing {photos.name} took {rclip.index_run.wall:.1f} s")
                queries(trees, rclip, sorted(photos.iterdir())[0], args.runs)
            if "int8" in args.parts:
                if "first" not in args.parts and "queries" not in args.parts:
                    for tree in trees:  # the towers, as a first add prepares them
                        tree.add(tree.index, small)
                int8(trees, small, args.int8_runs)
        finally:
            if args.baseline:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)])


if __name__ == "__main__":
    main()
