"""The `idx` click group: global options, error mapping, and the command families."""

from __future__ import annotations

import logging
import sys

import click

from idx.cli.output import QUIET_NOTES
from idx.errors import IdxError
from idx.progress import NOTE, LogLines


class IdxGroup(click.Group):
    """Turns IdxError into `error: <message>` on stderr and its exit code (2 usage, 1 failure)."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except IdxError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo(
                "interrupted: work committed so far is kept; run the same command again to resume",
                err=True,
            )
            ctx.exit(130)


@click.group(cls=IdxGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--index",
    "index_dir",
    envvar="IDX_INDEX",
    default=None,
    metavar="DIR",
    help="Index folder holding the DuckDB catalog and the FAISS file (env IDX_INDEX, default ./.idx).",
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    envvar="IDX_WAIT",
    default=0.0,
    metavar="SECONDS",
    help="A command that writes queues this long behind another writer of the index instead of "
    "failing at once (env IDX_WAIT; default 0). Reading commands never need it.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log what the library does (to stderr).")
@click.version_option(package_name="idx-clip")
@click.pass_context
def cli(ctx: click.Context, index_dir: str | None, wait: float, verbose: bool) -> None:
    """idx: a CLIP embedding index and analysis workbench.

    Does CLIP group similar images together, and how well? Index folders of images with
    `idx add`, then search, cluster, project and measure.

    \b
    Example:
      idx add ~/photos/openimages
      idx status
      idx sql "SELECT count(*) FROM images"
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogLines(with_names=verbose))
    handler.addFilter(_unless_quiet)
    logging.basicConfig(level=logging.INFO if verbose else NOTE, handlers=[handler])
    global _command
    _command = ctx  # for notes logged outside click's context: the model loads in a worker thread
    ctx.ensure_object(dict)
    ctx.obj["index_dir"] = index_dir
    ctx.obj["wait"] = wait


#: The running command's root context. click keeps its current context per thread, and a note
#: can come from a worker thread (a first add loads the model, and prepares its towers, in a
#: decode thread); its `meta` is shared with every context under it.
_command: click.Context | None = None


def _unless_quiet(record: logging.LogRecord) -> bool:
    """The library's notes (progress.NOTE) are left out of a command given -q, as its own are,
    from whichever thread they come."""
    if record.levelno != NOTE:
        return True
    ctx = click.get_current_context(silent=True) or _command
    return ctx is None or not ctx.meta.get(QUIET_NOTES)


def _register() -> None:
    # One line per command family; each module defines `register(cli)`.
    from idx.cli import (
        analysis,
        demo,
        ingest,
        insights,
        labels,
        openimages,
        report,
        robustness,
        runs,
        search,
        serve,
    )

    for module in (
        ingest,
        search,
        analysis,
        labels,
        insights,
        robustness,
        runs,
        report,
        serve,
        demo,
    ):
        module.register(cli)
    openimages.register(cli)


_register()


def main() -> None:
    cli(prog_name="idx")
