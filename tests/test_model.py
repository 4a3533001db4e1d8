"""The model: stored with the index, reused on reopen, mismatches refused, offline failure fast."""

from __future__ import annotations

import time

import pytest
import torch
from click.testing import CliRunner

from idx.cli.main import cli
from idx.errors import ModelLoadError, ModelMismatchError, UsageError
from idx.indexer.index import Index
from idx.indexer.model import identity, weights


def test_model_is_stored_and_reused_without_flags(images, tiny_model):
    with Index(**tiny_model) as index:
        index.add([images])
    with Index() as index:  # no flags: the stored model
        ident = index.identity()
        assert ident.name == "idx-tiny" and ident.untrained
        assert index.encoder.encode_texts(["a red circle"]).shape == (1, 64)


def test_other_model_is_refused_with_a_way_out(images, tiny_model, tmp_path):
    with Index(**tiny_model) as index:
        index.add([images])
    other = weights.save_random_checkpoint(
        identity.tiny_config_path(), tmp_path / "other.safetensors", seed=1
    )
    with Index(model=tiny_model["model"], checkpoint=str(other)) as index:
        with pytest.raises(ModelMismatchError, match="--index NEW_DIR"):
            index.add([images])
    with Index(model="ViT-B-32", pretrained="openai") as index:
        with pytest.raises(ModelMismatchError, match="idx-tiny"):
            index.add([images])


def test_cli_model_mismatch_exit_code_and_message(images, tiny_args, tmp_path):
    runner = CliRunner()
    assert runner.invoke(cli, ["add", str(images), *tiny_args]).exit_code == 0
    result = runner.invoke(cli, ["add", str(images), "--model", "ViT-B-32"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: index ") and "was built with idx-tiny" in result.stderr
    assert result.stdout == ""


def test_offline_default_model_fails_fast_naming_the_fixes(images, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-cache"))
    monkeypatch.setenv("HOME", str(tmp_path))
    # Their first import takes seconds on a loaded machine: not the time the bound is about
    # (that the model's name is found missing at once, not after network timeouts).
    import huggingface_hub  # noqa: F401
    import open_clip  # noqa: F401

    start = time.perf_counter()
    with Index() as index, pytest.raises(ModelLoadError) as err:
        index.add([images])
    assert time.perf_counter() - start < 15
    assert "--checkpoint" in str(err.value) and "Hugging Face cache" in str(err.value)


def test_checkpoint_with_pickled_code_is_not_executed(tmp_path, images):
    class Payload:
        def __reduce__(self):
            return (print, ("pickled code ran",))

    bad = tmp_path / "evil.pt"
    torch.save({"state_dict": Payload()}, bad)
    with Index(model=str(identity.tiny_config_path()), checkpoint=str(bad)) as index:
        with pytest.raises(ModelLoadError, match="could not load model"):
            index.add([images])


def test_config_without_checkpoint_and_missing_files_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="--checkpoint"):
        identity.identify(identity.ModelSpec(model=str(identity.tiny_config_path())))
    with pytest.raises(UsageError, match="does not exist"):
        identity.identify(identity.ModelSpec(model=str(tmp_path / "nope.json"), checkpoint="x"))
    (tmp_path / "bad.json").write_text('{"embed_dim": 3}')
    with pytest.raises(UsageError, match="open_clip model config"):
        identity.identify(identity.ModelSpec(model=str(tmp_path / "bad.json"), checkpoint="x"))


def test_env_vars_select_the_model(images, tiny_model, monkeypatch):
    monkeypatch.setenv("IDX_MODEL", tiny_model["model"])
    monkeypatch.setenv("IDX_CHECKPOINT", tiny_model["checkpoint"])
    result = CliRunner().invoke(cli, ["add", str(images), "--json"])
    assert result.exit_code == 0, result.stderr
    assert "idx-tiny" in result.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--model", "ViT-B-99"], ["unknown model 'ViT-B-99'", "did you mean ViT-B-32"]),
        (["--model", "idx-tini"], ["unknown model 'idx-tini'", "did you mean idx-tiny?"]),
        (["--model", "vit-b-32"], ["unknown model 'vit-b-32'", "did you mean ViT-B-32, "]),
        (["--pretrained", "opnai"], ["no pretrained weights 'opnai'", "did you mean openai?"]),
    ],
)
def test_unknown_model_names_suggest_close_ones(images, tmp_path, args, words):
    """Issue 24: a mistyped name suggested nothing but a Python call."""
    result = CliRunner().invoke(cli, ["--index", str(tmp_path / "i"), "add", str(images), *args])
    assert result.exit_code == 2 and all(w in result.stderr for w in words), result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_a_checkpoint_of_another_model_is_one_message_naming_what_fits(
    images, tiny_checkpoint, tmp_path
):
    """Issue 24: ViT-B-32 with the tiny checkpoint ended in a 90-line traceback (`text pos_embed
    width changed!`); a text file as checkpoint in a SafetensorError traceback."""
    base = ["--index", str(tmp_path / "i"), "add", str(images)]
    result = CliRunner().invoke(
        cli, [*base, "--model", "ViT-B-32", "--checkpoint", tiny_checkpoint]
    )
    assert result.exit_code == 2, result.output
    message = result.stderr
    assert f"checkpoint {tiny_checkpoint} does not fit model ViT-B-32" in message
    assert "text width 64 (the model needs 512)" in message and "idx-tiny" in message
    text = tmp_path / "notes.safetensors"
    text.write_text("not weights\n")
    result = CliRunner().invoke(cli, [*base, "--model", "idx-tiny", "--checkpoint", str(text)])
    assert result.exit_code == 2 and "is not a safetensors file" in result.stderr
