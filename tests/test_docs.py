"""The documentation is true: every command has --help with an example and is named in the README;
the README's code fences are balanced; and its examples run as written.

README conventions (what the tests below rely on):

- Every code block names its language. ```sh blocks (commands) and ```python blocks are run as
  scripts; ```console blocks are transcripts: each `$ ` line is run (a quoted string may continue
  over the next lines) and must succeed, unless the transcript shows an `error:` line, which the
  command must then print on stderr with a non-zero exit. The lines shown after a command are
  what it prints, compared line for line with its stdout and stderr (interleaved in any order
  that keeps each stream's own; blank lines and trailing spaces ignored): a `...` line stands
  for any number of lines, `...` within a line for any text (timings, dates). So every output
  shown is real and stays so: when a change alters it, the test fails with what the command
  prints now, to paste in place. ```text blocks are not run, and show no output.
- `<!-- not run: REASON -->` on the line before a block leaves it out (the network, weights or
  files a reader has and the test cannot make). The Quick start transcript is not run but
  compared, the same way, with what `idx demo` prints. A block marked `<!-- not run: each line
  runs in its section below -->` (the Usage overview) may hold only commands that a later block
  runs as written.
- The blocks run in README order, in one temporary folder that is both the working directory and
  HOME, after a set-up that makes what the examples name: `idx demo --tiny` (the Quick start;
  `idx-demo/` with its model); `~/photos/openimages/<ImageID>.jpg` with the Open Images files
  `class-descriptions-boxable.csv`, `image-labels.csv`, `bbox-annotations.csv` and
  `bbox_labels_600_hierarchy.json` beside; `labels.csv`; `~/photos/album` (with a `thumbnails`
  folder, a `.tmp.jpg` draft and a hidden `.cache`); `query.jpg`. IDX_MODEL / IDX_CHECKPOINT
  name the demo's tiny model, so no example downloads the default one. In transcripts, /home/me
  stands for that folder; as its real name is longer, tables come out wider, so runs of spaces
  and of dashes compare as one. README_EXAMPLES_HOME=/tmp/a/m (a new folder, named as long as
  /home/me) runs the examples there instead, to paste what they print at the README's widths.
- Each example runs in a process of its own, forked from tests/warm_idx.py after the imports every
  `idx` command starts with (torch, open_clip, scikit-learn: ~3.5 s each time otherwise), so that
  the hundred-odd examples take minutes less; README_EXAMPLES_COLD=1 starts each from nothing.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from idx import synthetic
from idx.cli.main import cli

README_PATH = Path(__file__).resolve().parents[1] / "README.md"
WARM = Path(__file__).resolve().parent / "warm_idx.py"
README = README_PATH.read_text()
#: What transcripts write for the folder the examples run in.
HOME = "/home/me"
#: Where the examples run instead of a temporary folder: a new folder whose name is as long as
#: HOME (README_EXAMPLES_HOME=/tmp/a/m), so that what they print can be pasted into the README
#: with its tables' widths as a reader will see them.
HOME_SETTING = "README_EXAMPLES_HOME"
NOT_RUN = re.compile(r"<!--\s*not run:\s*(\S.*?)\s*-->")
RUN = {"sh", "console", "python"}
#: The reason that marks a block whose lines each run, as written, in a later block.
ELSEWHERE = "each line runs in its section below"
#: Seconds one block of examples may take before the test fails (a hung command must not hang it).
EXAMPLE_TIMEOUT_S = 600


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, cmd in group.commands.items():
        yield prefix + (name,), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, prefix + (name,))


COMMANDS = sorted(_commands(cli), key=lambda c: c[0])


@pytest.mark.parametrize("path", [c[0] for c in COMMANDS], ids=" ".join)
def test_help_has_an_example(path):
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, f"idx {' '.join(path)} --help shows no example"


@pytest.mark.parametrize("path", [c[0] for c in COMMANDS], ids=" ".join)
def test_readme_mentions_command(path):
    command = f"idx {' '.join(path)}"
    assert command in README, (
        f"README.md does not name `{command}`: add it to the section of its command family, "
        "with an example that runs as written (and to the Usage overview if people start there)"
    )


# -- code blocks ------------------------------------------------------------------------------


@dataclass
class Block:
    line: int  # of the opening fence, 1-based
    lang: str
    body: str
    not_run: str | None  # the reason given in <!-- not run: ... -->, else None

    def where(self) -> str:
        return f"README.md:{self.line} ({self.lang} block)"


def parse_blocks(text: str) -> tuple[list[Block], list[str]]:
    """The fenced code blocks of a Markdown text, and what is wrong with its fences."""
    blocks: list[Block] = []
    problems: list[str] = []
    lines = text.splitlines()
    opened: tuple[int, str] | None = None
    body: list[str] = []
    for number, line in enumerate(lines, 1):
        fence = re.match(r"^```(.*)$", line)
        if opened is None:
            if fence:
                lang = fence.group(1).strip()
                if not lang:
                    problems.append(f"README.md:{number}: a code block opens without a language")
                previous = lines[number - 2] if number > 1 else ""
                reason = NOT_RUN.search(previous)
                opened, body = (number, lang), []
                blocks.append(Block(number, lang, "", reason.group(1) if reason else None))
        elif fence and not fence.group(1).strip():
            blocks[-1].body = "\n".join(body) + "\n"
            opened = None
        else:
            if fence:
                problems.append(f"README.md:{number}: a fence with a language inside a code block")
            # a `# comment` is code in a run block; `## Section` is a heading that lost its place
            least = 2 if opened[1] in RUN else 1
            if re.match(rf"^#{{{least},6}} \S", line):
                problems.append(f"README.md:{number}: heading inside a code block: {line!r}")
            body.append(line)
    if opened is not None:
        problems.append(f"README.md:{opened[0]}: code block never closed")
    return blocks, problems


def test_readme_code_fences_are_balanced():
    fences = [line for line in README.splitlines() if line.startswith("```")]
    blocks, problems = parse_blocks(README)
    assert not problems, "\n".join(problems)
    assert len(fences) == 2 * len(blocks), "an odd number of ``` fences"
    headings = [line for line in README.splitlines() if re.match(r"^##+ ", line)]
    inside = {line for b in blocks for line in b.body.splitlines()}
    assert headings and not inside & set(headings)


def test_parse_blocks_finds_what_renders_wrongly():
    text = "intro\n```sh\nidx status\n```\n```\n## Heading\n```python\nx = 1\n"
    _, problems = parse_blocks(text)
    assert any("without a language" in p for p in problems)
    assert any("heading inside" in p for p in problems)
    assert any("inside a code block" in p and "language" in p for p in problems)
    assert parse_blocks("<!-- not run: needs the network -->\n```sh\nx\n```\n")[0][0].not_run == (
        "needs the network"
    )


def _normal(command: str) -> str:
    """A command without its comment, whitespace collapsed."""
    return " ".join(shlex.split(command, comments=True))


def test_overview_lines_run_in_their_sections():
    """A block marked as run elsewhere (the Usage overview) holds only commands that a run block
    further down holds too, so each is still run as written."""
    blocks = parse_blocks(README)[0]
    for k, block in enumerate(blocks):
        if block.not_run != ELSEWHERE:
            continue
        later = set()
        for other in blocks[k + 1 :]:
            if other.lang == "sh" and not other.not_run:
                later |= {_normal(command) for command in sh_commands(other.body)}
            elif other.lang == "console" and not other.not_run:
                later |= {_normal(command) for command, _ in console_commands(other.body)}
        missing = [line for line in sh_commands(block.body) if _normal(line) not in later]
        assert not missing, f"{block.where()}: not run further down as written: {missing}"


def test_every_block_has_a_known_language_and_some_are_run():
    blocks, _ = parse_blocks(README)
    unknown = [b.where() for b in blocks if b.lang not in RUN | {"text"}]
    assert not unknown, f"blocks with a language the tests do not know: {unknown}"
    assert [b for b in blocks if b.lang in RUN and b.not_run is None], "no example is run"


def console_commands(body: str) -> list[tuple[str, list[str]]]:
    """(command, the output lines shown after it) for each `$ ` line of a transcript."""
    out: list[tuple[str, list[str]]] = []
    lines = body.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("$ "):
            command = lines[i][2:]
            while not _complete(command) and i + 1 < len(lines):
                i += 1
                command += "\n" + lines[i]
            out.append((command, []))
        elif out:
            out[-1][1].append(lines[i])
        i += 1
    return out


def sh_commands(body: str) -> list[str]:
    """The commands of a shell block, a quoted string continuing over lines."""
    out, current = [], ""
    for line in body.splitlines():
        current = f"{current}\n{line}" if current else line
        if _complete(current):
            if current.strip():
                out.append(current)
            current = ""
    return out


def _complete(command: str) -> bool:
    try:
        shlex.split(command, comments=True)
    except ValueError:
        return False
    return not command.endswith("\\")


def test_console_commands_continue_open_quotes():
    body = '$ idx sql "SELECT 1\n         AS x"\nx\n-\n1\n$ idx status   # it\'s fine\n'
    assert console_commands(body) == [
        ('idx sql "SELECT 1\n         AS x"', ["x", "-", "1"]),
        ("idx status   # it's fine", []),
    ]


# -- running the examples ---------------------------------------------------------------------


def _env(home: Path, checkpoint: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDX_")}
    bin_dir = home.parent / "bin"
    bin_dir.mkdir(exist_ok=True)
    if not (Path(sys.executable).parent / "idx").exists():
        # idx installed without its script next to this Python: call the same CLI through it
        _script(bin_dir / "idx", f'exec "{sys.executable}" -m idx "$@"')
    env.update(
        HOME=str(home),
        PATH=os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), env["PATH"]]),
        IDX_MODEL="idx-tiny",
        IDX_CHECKPOINT=str(checkpoint),
        HF_HUB_OFFLINE="1",
        MPLBACKEND="Agg",
        PYTHONWARNINGS="ignore",
    )
    return env


def _script(path: Path, line: str) -> None:
    path.write_text(f"#!/bin/sh\n{line}\n")
    path.chmod(0o755)


def _run(args: list[str] | str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        args,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=EXAMPLE_TIMEOUT_S,
        shell=isinstance(args, str),
        executable="/bin/bash" if isinstance(args, str) else None,
    )


#: The Open Images label ids of the photos made for the examples, one per generated category.
CLASSES = {name: f"/m/0demo{i}" for i, name in enumerate(synthetic.CATEGORIES)}


def _photos(home: Path, per_class: int = 3) -> None:
    """What the examples name besides the demo: ~/photos/openimages/<ImageID>.jpg with the Open
    Images files that label them (and a plain labels.csv) in home, ~/photos/album with a
    thumbnails folder, a draft and a hidden folder to leave out, and query.jpg."""
    folder = home / "photos" / "openimages"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    labels, boxes, plain = [], [], []
    for ci, (name, paint) in enumerate(synthetic.CATEGORIES.items()):
        for i in range(per_class):
            image_id = f"{int(rng.integers(2**63)):016x}"
            paint(np.random.default_rng([7, ci, i]), 128).save(folder / f"{image_id}.jpg")
            labels.append([image_id, "verification", CLASSES[name], "1"])
            plain.append([f"photos/openimages/{image_id}.jpg", name])
            if i == 0:
                boxes.append([image_id, "xclick", CLASSES[name], "1", "0.1", "0.9", "0.2", "0.8"])
    labels.append(["ffff000000000000", "verification", CLASSES["sunsets"], "1"])  # not indexed
    labels.append([labels[0][0], "verification", CLASSES["sunsets"], "0"])  # verified absent
    _write_csv(home / "class-descriptions-boxable.csv", [[k, n] for n, k in _classes().items()])
    (home / "bbox_labels_600_hierarchy.json").write_text(json.dumps(_hierarchy()))
    _write_csv(
        home / "image-labels.csv", [["ImageID", "Source", "LabelName", "Confidence"], *labels]
    )
    header = ["ImageID", "Source", "LabelName", "Confidence", "XMin", "XMax", "YMin", "YMax"]
    _write_csv(home / "bbox-annotations.csv", [header, *boxes])
    _write_csv(home / "labels.csv", plain)
    album = home / "photos" / "album"
    (album / "thumbnails").mkdir(parents=True)
    for i, paint in enumerate(synthetic.CATEGORIES.values()):
        picture = paint(np.random.default_rng([8, i]), 128)
        picture.save(album / f"IMG_{i:04d}.jpg")
        picture.resize((48, 48)).save(album / "thumbnails" / f"IMG_{i:04d}.jpg")
    (home / "photos" / ".cache").mkdir()
    shutil.copy(album / "IMG_0000.jpg", album / "IMG_0000.tmp.jpg")
    shutil.copy(album / "IMG_0001.jpg", home / "photos" / ".cache" / "IMG_0001.jpg")
    shutil.copy(next(folder.iterdir()), home / "query.jpg")


#: The parent classes of the example hierarchy (Open Images keys), each over some categories.
PARENTS = {
    "Fruit": ("/m/02xwb", ["red_circles", "yellow_triangles"]),
    "Dessert": ("/m/0270h", ["sunsets", "starry_nights", "foggy_noise"]),
    "Snack": ("/m/06nwz", ["blue_squares", "checkerboards", "green_stripes"]),
}


def _classes() -> dict[str, str]:
    """Display name -> label key of every class in the example files, parents included."""
    parents = {name: key for name, (key, _) in PARENTS.items()}
    return {"Entity": "/m/0bl9f", "Food": "/m/02wbm", **parents, **CLASSES}


def _hierarchy() -> dict:
    """Open Images' bbox_labels_600_hierarchy.json shape: Entity > Food > Fruit... > categories."""
    return {
        "LabelName": "/m/0bl9f",
        "Subcategory": [
            {
                "LabelName": "/m/02wbm",
                "Subcategory": [
                    {"LabelName": key, "Subcategory": [{"LabelName": CLASSES[c]} for c in kids]}
                    for key, kids in PARENTS.values()
                ],
            }
        ],
    }


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)


@dataclass
class World:
    home: Path
    env: dict[str, str]
    demo: subprocess.CompletedProcess
    warm: bool = False

    def python(self, code: str) -> subprocess.CompletedProcess:
        """Run a Python example as `python FILE` would (through the warm server when there)."""
        script = self.home.parent / "example.py"
        script.write_text(code)
        if self.warm:
            return _run(
                [sys.executable, "-S", str(WARM), "python", str(script)], self.home, self.env
            )
        return _run([sys.executable, str(script)], self.home, self.env)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("readme")
    if os.environ.get(HOME_SETTING):
        # a folder named as long as /home/me: tables printed there keep the README's widths
        home = Path(os.environ[HOME_SETTING])
        home.mkdir(parents=True)
    env = _env(home, home / "idx-demo" / "model" / "idx-tiny-random.safetensors")
    # the Quick start, in a process of its own, with the tiny model even where the default one
    # could be downloaded
    demo = _run(["idx", "demo", "--tiny"], home, env)
    assert demo.returncode == 0, demo.stderr
    _photos(home)
    if os.environ.get("README_EXAMPLES_COLD"):
        yield World(home, env, demo)
        return
    # the examples: `idx` through tests/warm_idx.py (a fresh process per command, forked after
    # the imports every command pays for; README_EXAMPLES_COLD=1 starts each one from nothing)
    socket_path = home.parent / "warm.sock"
    env["WARM_IDX_SOCKET"] = str(socket_path)
    server = subprocess.Popen(
        [sys.executable, str(WARM), "serve", str(socket_path)],
        env=env,
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout.readline().strip() == "ready", "tests/warm_idx.py did not start"
        _script(home.parent / "bin" / "idx", f'exec "{sys.executable}" -S "{WARM}" idx "$@"')
        yield World(home, env, demo, warm=True)
    finally:
        server.kill()
        server.wait()


def _lines(text: str, home: Path | None = None) -> list[str]:
    """The lines compared: trailing spaces dropped, blank lines left out, and the folder the
    examples ran in written as /home/me."""
    if home is not None:
        text = text.replace(str(home), HOME)
    return [line.rstrip() for line in text.splitlines() if line.strip()]


def _matches(shown: list[str], out: list[str], err: list[str] = ()) -> str | None:
    """None when the shown lines are stdout's and stderr's lines merged, each stream in its own
    order (a terminal shows them so; pipes cannot tell in which order they were written), where
    a shown `...` line stands for any number of lines of either and `...` within a line for any
    text (as doctest's ELLIPSIS); else what went wrong: the first shown line that nothing
    printed matches there, or the first printed line that nothing shown stands for."""
    shown = [line.rstrip() for line in shown if line.strip()]
    end = (len(shown), len(out), len(err))
    seen = {(0, 0, 0)}
    todo = [(0, 0, 0)]
    while todo:
        i, j, k = todo.pop()
        if (i, j, k) == end:
            return None
        steps = []
        if i < len(shown) and shown[i].strip() == "...":
            steps += [(i + 1, j, k), (i, j + 1, k), (i, j, k + 1)]
        elif i < len(shown):
            if j < len(out) and _same(shown[i], out[j]):
                steps.append((i + 1, j + 1, k))
            if k < len(err) and _same(shown[i], err[k]):
                steps.append((i + 1, j, k + 1))
        for step in steps:
            if step not in seen and step[1] <= len(out) and step[2] <= len(err):
                seen.add(step)
                todo.append(step)
    furthest = max(seen)
    if furthest[0] < len(shown):
        return f"shown {shown[furthest[0]]!r}, printed no such line there"
    extra = [line for j, line in enumerate(out) if j >= furthest[1]]
    extra += [line for k, line in enumerate(err) if k >= furthest[2]]
    return f"printed {extra[0]!r}, shown no line for it"


@functools.lru_cache(maxsize=4096)
def _pattern(shown: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(_squeeze(part)) for part in shown.split("...")))


def _same(shown: str, printed: str) -> bool:
    return _pattern(shown).fullmatch(_squeeze(printed)) is not None


def _squeeze(line: str) -> str:
    """A run of spaces as two, a run of dashes (a table's rule) as two: a table's column widths
    depend on the length of the folder the examples ran in, which /home/me stands for."""
    return re.sub(r"-{2,}", "--", re.sub(r" {2,}", "  ", line))


def test_matches_reads_ellipses_and_two_streams():
    printed = ["a 1", "b", "c", "d 42 kB"]
    assert _matches(["a 1", "...", "d ... kB"], printed) is None
    assert "'d 41 kB'" in _matches(["a 1", "b", "c", "d 41 kB"], printed)
    assert "printed 'c'" in _matches(["a 1", "b"], printed)
    assert _matches(["a 1", "...", "b"], ["a 1", "x", "b"]) is None
    # stderr's note before stdout's table and its device line after: each stream keeps its order
    out, err = ["rank  score", "1     0.9"], ["note: untrained", "device: cpu"]
    assert (
        _matches(["note: untrained", "rank  score", "1     0.9", "device: cpu"], out, err) is None
    )
    assert _matches(["device: cpu", "rank  score", "1     0.9", "note: untrained"], out, err)
    assert _matches(["", "note: untrained  ", "...", "device: cpu"], out, err) is None
    # a table printed in a longer folder than /home/me: its widths differ, its cells do not
    table = ["path                   score", "---------------------  -----", "/home/me/a.jpg"]
    assert (
        _matches(["path            score", "--------------  -----", "/home/me/a.jpg"], table)
        is None
    )
    assert _matches(["path score"], ["path  score"])


def test_quick_start_shows_what_the_demo_prints(world):
    block = next(b for b in parse_blocks(README)[0] if b.body.startswith("$ idx demo\n"))
    (_, shown), *_ = console_commands(block.body)
    # `--tiny` skips the line that says why the tiny model is used offline
    shown = [line for line in shown if not line.startswith("demo: weights for ")]
    out, err = _lines(world.demo.stdout, world.home), _lines(world.demo.stderr, world.home)
    mismatch = _matches(shown, out, err)
    assert mismatch is None, (
        f"{block.where()}: the Quick start transcript is not what `idx demo` prints: {mismatch}; "
        "it prints:\n" + "\n".join(err + out)
    )


def test_readme_examples_run_as_written(world):
    ran, differ = 0, []
    for block in parse_blocks(README)[0]:
        if block.lang not in RUN or block.not_run:
            continue
        if block.lang == "sh":
            script = ["bash", "-eo", "pipefail", "-c", block.body]
            _check(block, block.body, _run(script, world.home, world.env))
        elif block.lang == "python":
            _check(block, block.body, world.python(block.body))
        else:
            for command, shown in console_commands(block.body):
                result = _run(command, world.home, world.env)
                _check(block, command, result, shown)
                differ += _compare(block, command, result, shown, world.home)
        ran += 1
    assert ran >= 10
    # after every block has run: one failure lists every transcript that no longer holds
    assert not differ, "\n\n".join(differ)


def _check(
    block: Block, command: str, result: subprocess.CompletedProcess, shown: list[str] = ()
) -> None:
    errors = [line.split("...")[0] for line in shown if line.startswith("error: ")]
    said = f"\n--- stdout:\n{result.stdout[-3000:]}\n--- stderr:\n{result.stderr[-3000:]}"
    if errors:
        assert result.returncode != 0, f"{block.where()}: `{command}` should fail{said}"
        assert all(e in result.stderr for e in errors), f"{block.where()}: `{command}`{said}"
    else:
        assert result.returncode == 0, f"{block.where()}: `{command}` failed{said}"


def _compare(
    block: Block, command: str, result: subprocess.CompletedProcess, shown: list[str], home: Path
) -> list[str]:
    """[] when the transcript shows what the command printed; else a message with what it
    prints now (home as /home/me), to paste into the README, with `...` where it varies."""
    out, err = _lines(result.stdout, home), _lines(result.stderr, home)
    mismatch = _matches(shown, out, err)
    if mismatch is None:
        return []
    return [
        f"{block.where()}: `$ {command}` no longer prints what the README shows ({mismatch}); "
        f"it prints (stderr, then stdout; run with {HOME_SETTING}=/tmp/a/m to paste tables at "
        "their widths):\n" + "\n".join(err + out)
    ]
