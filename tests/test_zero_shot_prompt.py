"""One zero-shot prompt: insights and robustness encode the same text for every class and report
the same zero-shot accuracy for the same images and model."""

from __future__ import annotations

import pytest

from idx import config
from idx.indexer.index import Index
from idx.ops.insights import measure as insights_api
from idx.ops.labels import imports as labels_api
from idx.ops.robustness.measure import measure


def test_insights_and_robustness_agree_on_prompts_and_zero_shot(indexed_copy, tiny_model):
    with Index(indexed_copy, **tiny_model) as index:
        labels_api.import_folders(index)  # classes named like red_circles: underscores
        encode_texts = index.texts.encode  # every text the index encodes goes through here
        sent: list[list[str]] = []

        def recording(texts):
            sent.append(list(texts))
            return encode_texts(texts)

        index.texts.encode = recording
        insights = insights_api.insights(index, k_nn=5, plots=False)
        n_images = insights.metrics["n_images"]
        robustness = measure(index, ["jpeg"], [1], sample=n_images, k=5, plots=False)
    insight_prompts, robustness_prompts = sent
    names = sorted({row[1] for row in insights.classes})
    assert any("_" in name for name in names)
    assert insight_prompts == robustness_prompts == [config.prompt(n) for n in names]
    clean = next(r for r in robustness.results if r["perturbation"] == "clean")
    assert clean["n"] == n_images
    assert clean["zero_shot_accuracy"] == pytest.approx(insights.metrics["zero_shot_accuracy"])
