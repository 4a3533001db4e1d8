"""int8 against fp32 on the CPU (issue 12): end-to-end `idx add` throughput of ViT-B-32 (random
weights, local checkpoint) on the shared Open Images photos, both ways, in one process, and the
mean cosine between the two indexes' vectors of the same images.

    .venv/bin/python bench/precision.py [--photos 200] [--batch 64]

Targets: int8 end-to-end >= 1.4x fp32 end-to-end, at mean cosine >= 0.99. Also prints the image
tower alone (pre-decoded tensors) both ways, and torch's own dynamic quantisation for
comparison: the measurement behind choosing ONNX Runtime.
"""

from __future__ import annotations

import argparse
import shutil
import time
import warnings

import numpy as np
from common import OUT, link_files, report, shared_photos, towers_prepared, vit_b32_random


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=200)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()

    import torch

    from idx.indexer.files.decode import open_image
    from idx.indexer.index import Index
    from idx.indexer.model.encoder import Encoder
    from idx.indexer.model.identity import ModelSpec, identify

    kw = towers_prepared(vit_b32_random())
    ident = identify(ModelSpec(model=kw["model"], checkpoint=kw["checkpoint"]))
    # fp32: the default, from the ONNX image tower when it is prepared (it is, above); "torch":
    # the same model in torch, as every fp32 add ran before the towers
    encoders = {p: Encoder.load(ident, "cpu", p) for p in ("fp32", "int8")}
    encoders["torch"] = encoders["fp32"].torch_model()
    paths = shared_photos(args.photos)
    folder = link_files(paths, OUT / "precision" / "images")
    pixels = torch.stack(
        [encoders["torch"].preprocess(open_image(p, 224).image) for p in paths[: args.batch]]
    )

    def tower(encode) -> float:
        encode(pixels)  # warm-up
        start = time.perf_counter()
        encode(pixels)
        return len(pixels) / (time.perf_counter() - start)

    def add(precision: str) -> tuple[float, np.ndarray]:
        index_dir = OUT / "precision" / f"index-{precision}"
        shutil.rmtree(index_dir, ignore_errors=True)
        with Index(index_dir, encoder=encoders[precision]) as index:
            start = time.perf_counter()
            index.add([folder], batch_size=args.batch)
            elapsed = time.perf_counter() - start
            ids, vectors = index.embeddings()
            order = np.argsort([index.catalog.images.paths_for(ids)[int(i)] for i in ids])
        return len(paths) / elapsed, vectors[order]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantised = torch.ao.quantization.quantize_dynamic(
            encoders["torch"].model.visual, {torch.nn.Linear}, dtype=torch.qint8
        )

    def torch_int8(batch):
        with torch.inference_mode():
            return quantised(batch)

    # fp32 measured before and after int8, averaged, so drift on a shared machine cancels.
    torch_a, reference = add("torch")
    fp32_a, _ = add("fp32")
    int8_rate, vectors = add("int8")
    fp32_b, onnx_vectors = add("fp32")
    torch_b, _ = add("torch")
    fp32_rate, torch_rate = (fp32_a + fp32_b) / 2, (torch_a + torch_b) / 2
    cosine = float(np.mean(np.sum(reference * vectors, axis=1)))
    onnx_cosine = float(np.mean(np.sum(reference * onnx_vectors, axis=1)))
    t32 = tower(encoders["torch"].encode_images)
    t32o = tower(encoders["fp32"].encode_images)
    t8 = tower(encoders["int8"].encode_images)
    tq = tower(torch_int8)
    report(
        f"int8 vs fp32, ViT-B-32 random weights, {len(paths)} Open Images photos, batch {args.batch}",
        [
            ("add end-to-end fp32, torch", f"{torch_rate:.1f} img/s", ""),
            (
                "add end-to-end fp32, ONNX image tower",
                f"{fp32_rate:.1f} img/s",
                f"{fp32_rate / torch_rate:.2f}x torch",
            ),
            ("add end-to-end int8", f"{int8_rate:.1f} img/s", ""),
            ("int8 / fp32 torch end-to-end", f"{int8_rate / torch_rate:.2f}", "target >= 1.4"),
            ("int8 / fp32 ONNX end-to-end", f"{int8_rate / fp32_rate:.2f}", ""),
            ("mean cosine int8 vs fp32 torch", f"{cosine:.4f}", "target >= 0.99"),
            ("mean cosine fp32 ONNX vs fp32 torch", f"{onnx_cosine:.6f}", ""),
            ("image tower fp32 (torch)", f"{t32:.1f} img/s", ""),
            ("image tower fp32 (ONNX Runtime)", f"{t32o:.1f} img/s", f"{t32o / t32:.2f}x"),
            ("image tower int8 (ONNX Runtime)", f"{t8:.1f} img/s", f"{t8 / t32:.2f}x"),
            ("image tower int8 (torch dynamic)", f"{tq:.1f} img/s", f"{tq / t32:.2f}x"),
        ],
    )


if __name__ == "__main__":
    main()
