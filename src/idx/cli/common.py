"""Helpers shared by the command modules: opening the index, shared options."""

from __future__ import annotations

from typing import Any

import click

from idx.indexer.index import Index

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object on stdout."
)
quiet_option = click.option(
    "-q", "--quiet", is_flag=True, help="No progress bar and no per-file messages."
)


def model_options(fn: Any) -> Any:
    """--model / --pretrained / --checkpoint, with their IDX_* env vars."""
    fn = click.option(
        "--checkpoint",
        metavar="FILE",
        default=None,
        help="Local open_clip weights (.safetensors/.pt), loaded without running pickled code "
        "(env IDX_CHECKPOINT).",
    )(fn)
    fn = click.option(
        "--pretrained",
        metavar="TAG",
        default=None,
        help="open_clip pretrained tag, e.g. openai or laion2b_s34b_b79k (env IDX_PRETRAINED).",
    )(fn)
    fn = click.option(
        "--model",
        metavar="NAME|CONFIG.json",
        default=None,
        help="open_clip model name or model config JSON (env IDX_MODEL; default: what the index "
        "stored, else ViT-B-32 with OpenAI weights).",
    )(fn)
    return fn


def open_index(ctx: click.Context, *, read_only: bool = False, **model: Any) -> Index:
    return Index(ctx.obj.get("index_dir"), read_only=read_only, **model)
