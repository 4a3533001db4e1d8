"""The core promise of `idx add`: every image embedded once, re-adding changes nothing."""

from __future__ import annotations

import numpy as np

from idx.indexer.index import Index


def test_first_add_embeds_every_image_and_second_add_does_nothing(images, tiny_model):
    n_files = len(list(images.rglob("*.jpg"))) + len(list(images.rglob("*.png")))
    with Index(**tiny_model) as index:
        first = index.add([images])
        assert (first.added, first.embedded, first.skipped) == (n_files, n_files, 0)
        second = index.add([images])
        assert (second.added, second.unchanged, second.embedded) == (0, n_files, 0)
        ids, vectors = index.embeddings()
        assert len(ids) == n_files
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
        assert sorted(
            index.vectors.index.id_map.at(i) for i in range(index.vectors.ntotal)
        ) == sorted(ids)
