"""`idx serve`: search the index over HTTP and in a browser."""

from __future__ import annotations

import sys

import click

from idx import config
from idx.cli.options import model_options, output_options
from idx.cli.output import render_summary, warn


@click.command()
@click.option(
    "--host",
    default=config.SERVE_HOST,
    show_default=True,
    help="Address to listen on. Anything but loopback lets other machines connect, and then "
    "every request needs the token.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=config.SERVE_PORT,
    show_default=True,
    help="Port to listen on (0: any free port, printed at start).",
)
@click.option(
    "--token",
    metavar="TEXT",
    help="Ask every request for this token (Authorization: Bearer TEXT, or ?token=TEXT once in "
    "the browser). Default: IDX_SERVE_TOKEN; else, beyond loopback, a new one, printed with the "
    "URL; on loopback, none.",
)
@click.option("-q", "--quiet", is_flag=True, help="Do not log each request (on stderr).")
@output_options(csv=False)  # it prints one line (or object) when ready: no rows for a CSV
@model_options
@click.pass_context
def serve(ctx, host, port, token, quiet, fmt, model, pretrained, checkpoint):
    """Serve the index: a JSON API and a web app to search, browse and filter images.

    Loads the model and the vectors once, then answers until Ctrl-C: text and image queries,
    neighbours, thumbnails, the latest map, filters (label, cluster, folder, SQL) and read-only
    SQL. It follows a running `idx add` (new images appear without a restart) and never changes
    the index. Prints where it listens when ready: one line (`serving N images of INDEX at URL`),
    or with --json one JSON object (url, host, port, token, the index and its images).

    It answers only requests for this machine's loopback names (Host) and, in the API, none
    from other sites' pages (Origin, Sec-Fetch-Site). Beyond loopback (--host) every request
    needs the token, printed in the URL (http://HOST:PORT/?token=...). Files are sent only
    while they are the files that were indexed, with the type of their indexed format.

    \b
    Example:
      idx serve                          # then open http://127.0.0.1:8765/
      idx serve --port 9000 --json
      curl 'http://127.0.0.1:8765/api/search?text=a+red+apple&k=5&label=Apple'
      idx serve --host 0.0.0.0           # other machines too: prints http://0.0.0.0:8765/?token=...
      curl -H "Authorization: Bearer $TOKEN" 'http://HOST:8765/api/status'
    """
    from idx.serve.server import is_loopback, server_token
    from idx.serve.server import serve as run_server
    from idx.serve.session import Session

    token = server_token(host, config.serve_token(token))
    if not is_loopback(host):
        warn(
            f"warning: listening on {host}: anyone who can reach port {port} there and has the "
            "token can see every indexed image and run read-only SQL on the catalog; the token "
            "and the images travel unencrypted (plain HTTP): use a network you trust, or an "
            "HTTPS proxy in front"
        )
    session = Session.open(
        ctx.obj.get("index_dir"),
        model=model,
        pretrained=pretrained,
        checkpoint=checkpoint,
        device=ctx.obj.get("device"),
    )

    def ready(info: dict) -> None:
        def table() -> None:
            click.echo(
                f"serving {info['images']} images of {info['index']} at {info['url']} "
                "(Ctrl-C stops)"
            )

        render_summary(info, fmt, table)
        sys.stdout.flush()  # click.get_text_stream is deprecated (click 8.5) and untyped

    try:
        run_server(session, host, port, token=token, access_log=not quiet, on_ready=ready)
    except KeyboardInterrupt:  # Ctrl-C is how a server stops: not an interrupted job
        warn("stopped")
    finally:
        session.close()


def register(cli: click.Group) -> None:
    cli.add_command(serve)
