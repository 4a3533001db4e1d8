"""`idx robustness inject / eject / compare`: corrupted images as a marked, removable source.

An injection writes real image files under `<index>/injected/<id>/` and adds them with `add`
under `images.source = 'inject:<id>'`, so every command sees them like any other image until
`eject` removes the rows, their vectors and the files.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from idx import config
from idx.analysis import perturbations as registry
from idx.analysis.injection import SYNTHETIC_KINDS, InjectionComparison, synthetic_image
from idx.analysis.robustness import lookup
from idx.errors import DecodeError, NotFoundError, UsageError
from idx.indexer.files.decode import open_image
from idx.indexer.index import Index
from idx.ops.labels.positives import load_positives
from idx.ops.robustness.inputs import sample_ids
from idx.parallel import ordered_map
from idx.progress import Progress

log = logging.getLogger(__name__)

INJECTED_DIR = "injected"
DEFAULT_COMPARE_K = 8


def injection_kinds() -> list[str]:
    return registry.perturbation_names() + list(SYNTHETIC_KINDS)


@dataclass
class Injection:
    id: int
    kind: str
    severity: int | None
    fraction: float
    seed: int
    source: str
    n_images: int
    folder: str

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def check_arguments(kind: str, severity: int | None, fraction: float) -> tuple[str, int | None]:
    """(the perturbation's name, its severity or None for a synthetic kind) for inject's
    arguments, or UsageError naming the valid values: checked before any index is opened."""
    if not 0 < fraction <= 1:
        raise UsageError(f"--fraction {fraction} must be above 0 and at most 1 (0.2 = 20 %)")
    if kind in SYNTHETIC_KINDS:
        return kind, None
    try:
        name = registry.get_perturbation(kind).name
    except UsageError:
        raise UsageError(
            f"unknown --kind {kind!r}; valid kinds: {', '.join(injection_kinds())}"
        ) from None
    if severity not in registry.SEVERITIES:
        raise UsageError(f"--severity {severity} is out of range; use 1 to 5")
    return name, severity


def inject(
    index: Index,
    kind: str,
    *,
    severity: int | None = 3,
    fraction: float = 0.1,
    seed: int = 0,
    workers: int = 2,
    progress: Progress | None = None,
    on_skip: Any = None,
) -> Injection:
    """Add corrupted copies (or pure-noise / blank images) of a seeded sample of the images."""
    kind, severity = check_arguments(kind, severity, fraction)
    index.require_images("inject corrupted copies of")
    n_files = index.catalog.images.count(config.FILES_SOURCE)
    ids = sample_ids(index.catalog, max(1, round(fraction * n_files)), seed)
    runs = index.catalog.runs
    with index.catalog.transaction():
        inj_id = runs.create(
            "injection",
            {
                "kind": kind,
                "severity": severity,
                "fraction": fraction,
                "seed": seed,
                "source": "",
                "n_images": 0,
                "folder": "",
            },
        )
        source = f"inject:{inj_id}"
        folder = index.dir / INJECTED_DIR / str(inj_id)
        runs.update("injection", inj_id, {"source": source, "folder": str(folder)})
    paths = index.catalog.images.paths_for(ids)
    try:
        folder.mkdir(parents=True, exist_ok=True)

        def write(image_id: int) -> str | None:
            try:
                clean = open_image(paths[image_id]).image
            except DecodeError as exc:
                if on_skip:
                    on_skip(paths[image_id], str(exc))
                return None
            if severity is None:
                image = synthetic_image(kind, clean, registry.rng_for(kind, seed, image_id))
                name = f"{image_id}-{kind}.png"
            else:
                image = registry.apply(kind, clean, severity, seed, key=image_id)
                name = f"{image_id}-{kind}-s{severity}.png"
            image.save(folder / name)
            return name

        written = [n for n in ordered_map(write, ids.tolist(), workers, "idx-inject") if n]
        report = index.add([folder], source=source, progress=progress, on_skip=on_skip)
        runs.update("injection", inj_id, {"n_images": report.added})
    except BaseException:
        _remove(index, inj_id, source, folder)
        raise
    log.info("injected %d %s images (%d files written)", report.added, kind, len(written))
    return get_injection(index, inj_id)


def list_injections(index: Index) -> list[Injection]:
    """Every injection, oldest first."""
    fields = Injection.__dataclass_fields__
    return [
        Injection(**{f: row[f] for f in fields})
        for row in reversed(index.catalog.runs.all("injection"))
    ]


def get_injection(index: Index, injection_id: int | None = None) -> Injection:
    """Injection `injection_id`, or the latest one."""
    found = list_injections(index)
    if injection_id is not None:
        found = [i for i in found if i.id == injection_id]
    if not found:
        what = f"injection {injection_id} does not exist" if injection_id else "nothing injected"
        listing = config.command(index.dir, "sql", "SELECT * FROM injections")
        add = config.command(
            index.dir,
            *"robustness inject --kind gaussian_noise --severity 3 --fraction 0.2".split(),
        )
        raise NotFoundError(f"{what}; list them with `{listing}` or add one with `{add}`")
    return found[-1]


def _remove(index: Index, injection_id: int, source: str, folder: Path) -> int:
    removed = index.remove(index.catalog.images.ids(source))
    index.catalog.runs.delete("injection", injection_id)
    shutil.rmtree(folder, ignore_errors=True)
    try:
        folder.parent.rmdir()  # the last injection gone: leave no empty `injected/` behind
    except OSError:
        pass
    return removed


def eject(
    index: Index, injection_id: int | None = None, *, all_: bool = False
) -> list[dict[str, Any]]:
    """Remove injected images (rows, vectors, files): one injection, the latest, or all."""
    targets = list_injections(index) if all_ else [get_injection(index, injection_id)]
    out = []
    for inj in targets:
        removed = _remove(index, inj.id, inj.source, Path(inj.folder))
        out.append(inj.as_dict() | {"removed": removed})
    return out


def compare(
    index: Index, injection_id: int | None = None, *, k: int | None = None, seed: int = 0
) -> dict[str, Any]:
    """Clustering of the user's images with and without one injection's images, side by side."""
    inj = get_injection(index, injection_id)
    injected_ids = index.catalog.images.ids(inj.source)
    files = index.catalog.images.ids(config.FILES_SOURCE)
    ids, vectors = index.embeddings(np.concatenate([files, injected_ids]))
    injected = np.isin(ids, injected_ids)
    if not injected.any():
        raise NotFoundError(
            f"injection {inj.id} has no images left in the index; eject it with "
            f"`{config.command(index.dir, 'robustness', 'eject', '--id', str(inj.id))}`"
        )
    labels = load_positives(index.catalog)
    label_index = lookup(ids, labels.ids, labels.primary) if labels is not None else None
    k = k or _latest_cluster_k(index) or DEFAULT_COMPARE_K
    if k < 2:
        raise UsageError(f"--k {k} must be at least 2")
    cmp = InjectionComparison(k, random_state=seed).fit(vectors, injected, label_index)
    ident = index.stored_identity()
    return {
        "injection": inj.as_dict(),
        "k": k,
        "model": ident.describe() if ident else None,
        "untrained": bool(ident and ident.untrained),
        "with_injected": cmp.with_,
        "without_injected": cmp.without_,
        "clean_agreement_ari": cmp.clean_ari_,
        "landing": cmp.landing_,
        "labels": labels is not None,
    }


def _latest_cluster_k(index: Index) -> int | None:
    run_id = index.catalog.runs.latest("cluster")
    if run_id is None:
        return None
    run = index.catalog.runs.get("cluster", run_id)
    assert run is not None  # latest() has just returned its id
    k = run["k"]
    return None if k is None else int(k)
