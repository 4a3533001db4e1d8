"""Every flag shared by several commands, one decorator each, and opening the index they name.

Values that live in the library (choices, defaults) are read lazily, so that `idx --help` lists
the commands without importing FAISS, DuckDB or the model code.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib import import_module
from typing import TYPE_CHECKING, Any, TypeVar

import click

from idx import config
from idx.cli.output import QUIET_NOTES, note

if TYPE_CHECKING:
    from idx.indexer.index import Index
    from idx.indexer.ingest.settings import RunSettings

T = TypeVar("T")

#: Output formats of every command; commands that list rows also stream `jsonl`.
FORMATS = ("table", "csv", "json")
ROW_FORMATS = (*FORMATS, "jsonl")


class Lazy:
    """`module.attribute`, read when click needs it (a default, a help line, a choice)."""

    def __init__(self, module: str, attribute: str, convert: Callable[[Any], Any] = lambda v: v):
        self.module, self.attribute, self.convert = module, attribute, convert

    def __call__(self) -> Any:
        return self.convert(getattr(import_module(self.module), self.attribute))

    def __str__(self) -> str:  # click shows a callable default's str() in --help
        return str(self())


class LazyHelpOption(click.Option):
    """A click.Option whose help names library values, read when the help is shown: `help` is a
    template ("[default: {limit}]") and `values` maps each name in it to a Lazy."""

    def __init__(self, *args: Any, values: dict[str, Lazy], **kwargs: Any):
        self.values = values
        super().__init__(*args, **kwargs)

    @property
    def help(self) -> str | None:
        if self._help is None:
            return None
        return self._help.format_map({name: value() for name, value in self.values.items()})

    @help.setter
    def help(self, template: str | None) -> None:
        self._help = template


class LazyChoice(click.Choice):
    """A click.Choice whose values come from a Lazy when first needed."""

    def __init__(self, values: Callable[[], Any]):  # no super().__init__: `choices` is computed
        self.values = values
        self.case_sensitive = True

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self.values())


def output_options(fn: Any = None, *, rows: bool = False, csv: bool = True) -> Any:
    """--format table|csv|json (plus jsonl when `rows`: one JSON object per line; without csv
    when `csv` is False, for a command whose output is one line, not a table) and --json,
    passed to the command as one `fmt` argument."""
    choices = tuple(f for f in (ROW_FORMATS if rows else FORMATS) if csv or f != "csv")

    def decorate(command: Any) -> Any:
        @functools.wraps(command)
        def wrapper(*args: Any, fmt: str | None, as_json: bool, **kwargs: Any) -> Any:
            if as_json and fmt not in (None, "json"):
                raise click.UsageError(f"--json means --format json; drop --json or --format {fmt}")
            return command(*args, fmt="json" if as_json else (fmt or "table"), **kwargs)

        wrapper = click.option("--json", "as_json", is_flag=True, help="Same as --format json.")(
            wrapper
        )
        return click.option(
            "--format",
            "fmt",
            type=click.Choice(choices),
            default=None,
            help="Output: an aligned table (default)"
            + (", CSV, JSON" if csv else " or JSON")
            + (", or JSON lines (one object per row)." if rows else "."),
        )(wrapper)

    return decorate(fn) if fn is not None else decorate


def model_options(fn: Any) -> Any:
    """--model / --pretrained / --checkpoint, with their IDX_* env vars."""
    for decorator in reversed(
        (
            click.option(
                "--model",
                metavar="NAME|CONFIG.json",
                default=None,
                help="open_clip model name or model config JSON (env IDX_MODEL; default: what "
                "the index stored, else ViT-B-32 with OpenAI weights).",
            ),
            click.option(
                "--pretrained",
                metavar="TAG",
                default=None,
                help="open_clip pretrained tag, e.g. openai or laion2b_s34b_b79k "
                "(env IDX_PRETRAINED).",
            ),
            click.option(
                "--checkpoint",
                metavar="FILE",
                default=None,
                help="Local open_clip weights (.safetensors/.pt), loaded without running pickled "
                "code (env IDX_CHECKPOINT).",
            ),
        )
    ):
        fn = decorator(fn)
    return device_option(fn)


def _remember(key: str) -> Callable[[click.Context, Any, Any], None]:
    """A click callback keeping an option's value for open_index (not a command argument)."""

    def callback(ctx: click.Context, _param: Any, value: Any) -> None:
        if value is not None:
            ctx.ensure_object(dict)[key] = value

    return callback


device_option = click.option(
    "--device",
    metavar="auto|cpu|cuda|cuda:N|mps",
    default=None,
    expose_value=False,
    callback=_remember("device"),
    help="Where the model runs (env IDX_DEVICE; default auto: CUDA, then Apple MPS, then the "
    "CPU, named on stderr). cuda uses every visible GPU.",
)

precision_option = click.option(
    "--precision",
    type=click.Choice(config.PRECISIONS),
    default=None,
    expose_value=False,
    callback=_remember("precision"),
    help="fp32, or int8: the image tower quantised by ONNX Runtime on the CPU (about 2x faster; "
    "checked against fp32 on the index's own images before it is trusted; env IDX_PRECISION).",
)


def _quiet_notes(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta[QUIET_NOTES] = True
    return value


quiet_option = click.option(
    "-q",
    "--quiet",
    is_flag=True,
    callback=_quiet_notes,
    help="No progress bar, no per-file messages and no notes (warnings and errors stay).",
)
#: -q on a command with no progress of its own: no notes on stderr (warnings and errors stay).
notes_option = click.option(
    "-q",
    "--quiet",
    is_flag=True,
    expose_value=False,
    callback=lambda ctx, _param, value: ctx.meta.__setitem__(QUIET_NOTES, value),
    help="No notes on stderr (the device used, an untrained model); warnings and errors stay.",
)


def count_option(
    name: str = "k",
    *,
    extra: tuple[str, ...] = (),
    help: str,
    default: Any = None,
    required: bool = False,
    type: Any = None,
    metavar: str | None = None,
) -> Any:
    """A count of neighbours or clusters: `-k` and `--k` (and any `extra` spellings)."""
    return click.option(
        "-k",
        "--k",
        *extra,
        name,
        type=type if type is not None else click.IntRange(min=1),
        default=default,
        required=required,
        show_default=default is not None,
        metavar=metavar,
        help=help,
    )


def batch_options(fn: Any) -> Any:
    """--batch-size and --workers (env IDX_BATCH_SIZE, IDX_WORKERS; defaults in config.py)."""
    fn = click.option(
        "--workers",
        type=click.IntRange(min=1),
        default=None,
        help="Workers that read, decode or perturb images while the model runs (env "
        "IDX_WORKERS; default: cores + 1, max 4, on a CPU; every core on a GPU, where `add` (on Linux) "
        "decodes in processes: IDX_DECODE=processes|threads).",
    )(fn)
    return click.option(
        "--batch-size",
        type=click.IntRange(min=1),
        default=None,
        help=f"Images per model call (env IDX_BATCH_SIZE, default {config.DEFAULT_BATCH_SIZE}).",
    )(fn)


seed_option = click.option(
    "--seed", type=int, default=0, show_default=True, help="Random seed: same seed, same result."
)


no_plots_option = click.option("--no-plots", is_flag=True, help="Do not draw the plots.")

#: --show on an analysis command: print the stored run instead of computing one (stored_run).
show_option = click.option(
    "--show",
    "show_stored",
    is_flag=True,
    help="Print the newest stored run made with these parameters of the images there are now "
    "(as `idx runs show` does) instead of computing one; computed when there is none.",
)


def cluster_run_option(purpose: str) -> Any:
    """--run N: the cluster run a command compares with (`purpose`), by default the latest."""
    return click.option(
        "--run",
        "cluster_run",
        type=int,
        default=None,
        metavar="N",
        help=f"Cluster run {purpose} (default: the latest one, if any).",
    )


def plots_option(fn: Any) -> Any:
    """--out DIR: the folder for a command's plots."""
    return click.option(
        "--out",
        "out",
        type=click.Path(file_okay=False),
        default=None,
        metavar="DIR",
        help="Folder for the plots (default: <index>/plots/).",
    )(fn)


def filter_options(fn: Any) -> Any:
    """--where SQL, --label NAME, --cluster N: only images the filter keeps are results, passed
    to the command as `where`, `label`, `cluster`."""
    for decorator in reversed(
        (
            click.option(
                "--where",
                metavar="SQL",
                default=None,
                help="Only images for which this SQL condition over the image_info view holds "
                "(columns: id, path, folder, name, size, width, height, format, labels, "
                "cluster, ...), e.g. \"list_contains(labels, 'Banana') AND size > 50000\".",
            ),
            click.option(
                "--label",
                metavar="NAME",
                default=None,
                help="Only images with this label (display name or key, any case).",
            ),
            click.option(
                "--cluster",
                type=click.IntRange(min=0),
                default=None,
                metavar="N",
                help="Only images in cluster N of the latest `idx cluster` run.",
            ),
        )
    ):
        fn = decorator(fn)
    return fn


def open_index(
    ctx: click.Context,
    *,
    read_only: bool = False,
    create: bool = False,
    settings: RunSettings | None = None,
    **model: Any,
) -> Index:
    """The index named by `idx --index` (or IDX_INDEX, or ./.idx), opened with `model` flags,
    or with `settings` (run_settings) that hold them; a writer queues `idx --wait` seconds behind
    another one. Only `create` (the commands that add images) makes a new index: for the
    others a mistyped --index is an error that says how to make one, not an empty index."""
    from idx.indexer.index import Index

    wait = 0.0 if read_only else float(ctx.obj.get("wait") or 0.0)
    where = {"device": ctx.obj.get("device"), "precision": ctx.obj.get("precision"), **model}
    index = Index(
        ctx.obj.get("index_dir"),
        read_only=read_only,
        create=create,
        wait=wait,
        settings=settings,
        **({} if settings is not None else where),
    )
    ctx.call_on_close(lambda: _say_device(index))
    return index


def stored_run(
    ctx: click.Context, wanted: bool, find: Callable[[Index], T | None], what: str
) -> T | None:
    """When `wanted` (--show), the stored run that `find` picks in the index opened read-only;
    None, with a note that one is computed, when there is none."""
    if not wanted:
        return None
    with open_index(ctx, read_only=True) as index:
        found = find(index)
    if found is None:
        note(f"no stored {what} with these parameters: computing one")
    return found


def run_settings(ctx: click.Context, **flags: Any) -> RunSettings:
    """One `add` run's settings, resolved once from the command's flags with --device and
    --precision (flag > IDX_* env > default; what the index stored applies when it is open)."""
    from idx.indexer.ingest.settings import RunSettings

    return RunSettings.resolve(
        device=ctx.obj.get("device"), precision=ctx.obj.get("precision"), **flags
    )


def _say_device(index: Index) -> None:
    """Name the device the model ran on, when it ran and the user did not pick it (not with -q)."""
    quiet = click.get_current_context(silent=True)
    if quiet is not None and quiet.meta.get(QUIET_NOTES):
        return
    if index.device_used is not None and index.device == "auto":
        click.echo(f"device: {index.device_used}", err=True)
