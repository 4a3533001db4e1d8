"""One `add` run's settings as one frozen value (`RunSettings`), resolved once and passed from the
CLI through `Index` and the pipeline to the engine.

Precedence, setting by setting: flag > IDX_* env var > what the index stored > the default, each
read by config's function for that setting. Each setting is resolved at the first point where it
can be known, and only there: `resolve` takes the flags and the environment (the CLI's `add`, or
`Index` from its keyword arguments); `model_identity` adds what the index stored (`Index`, once
the catalog is open); `for_kind` resolves batch size, workers and decode processes, whose
defaults depend on the kind of device the model lands on, known only once `auto` is resolved
(which imports torch), so only when a run has something new to embed.

It lives here, not in config.py, because it applies the model's rules (int8 runs on the CPU,
`devices`; the stored model's precedence, `identity`), which the base layer may not import.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from idx import config
from idx.errors import UsageError
from idx.indexer.model import devices
from idx.indexer.model.identity import ModelIdentity, resolve


@dataclass(frozen=True)
class RunSettings:
    #: where the model runs (auto, cpu, cuda, cuda:N, mps): flag > IDX_DEVICE > auto; with int8,
    #: auto means the CPU and a GPU is refused
    device: str = "auto"
    #: fp32, or int8 (the image tower quantised, CPU only): flag > IDX_PRECISION > fp32
    precision: str = "fp32"
    #: the model asked for: flag > IDX_MODEL, IDX_PRETRAINED, IDX_CHECKPOINT; None where neither
    #: says, so that what the index stored applies, else the default (`model_identity`)
    model: str | None = None
    pretrained: str | None = None
    checkpoint: str | None = None
    #: images per model call and decode workers: the flag (None: not given) until `for_kind`,
    #: then flag > IDX_BATCH_SIZE / IDX_WORKERS > the device kind's default
    batch_size: int | None = None
    workers: int | None = None
    #: the local engine decodes in processes rather than threads (IDX_DECODE, else by device
    #: kind); None until `for_kind`
    decode_processes: bool | None = None
    #: who reads, decodes and embeds: flag > IDX_ENGINE > local
    engine: str = "local"
    #: the Ray cluster: flag > RAY_ADDRESS > None (a Ray instance on this machine for the run)
    ray_address: str | None = None
    #: the model the run embeds with (`model_identity`); None until `Index.add` sets it
    identity: ModelIdentity | None = None

    @classmethod
    def resolve(
        cls,
        *,
        device: str | None = None,
        precision: str | None = None,
        model: str | None = None,
        pretrained: str | None = None,
        checkpoint: str | os.PathLike[str] | None = None,
        batch_size: int | None = None,
        workers: int | None = None,
        engine: str | None = None,
        ray_address: str | None = None,
    ) -> RunSettings:
        """The settings from these flags (None: not given) and the IDX_* environment. A GPU named
        with int8 is refused here, before the index is opened."""
        precision = config.precision(precision)
        return cls(
            device=devices.for_precision(config.device(device), precision),
            precision=precision,
            model=model or config.env("MODEL"),
            pretrained=pretrained or config.env("PRETRAINED"),
            checkpoint=os.fspath(checkpoint) if checkpoint else config.env("CHECKPOINT"),
            batch_size=batch_size,
            workers=workers,
            engine=config.engine(engine),
            ray_address=config.ray_address(ray_address),
        )

    def with_flags(
        self,
        *,
        batch_size: int | None = None,
        workers: int | None = None,
        engine: str | None = None,
        ray_address: str | None = None,
    ) -> RunSettings:
        """These settings with `add`'s flags in front where given (flag > what these hold)."""
        return replace(
            self,
            batch_size=batch_size or self.batch_size,
            workers=workers or self.workers,
            engine=engine or self.engine,
            ray_address=ray_address or self.ray_address,
        )

    def places_model_as(self, other: RunSettings) -> bool:
        """Whether both run the same model the same way (device, precision, the model asked)."""
        same = ("device", "precision", "model", "pretrained", "checkpoint")
        return all(getattr(self, name) == getattr(other, name) for name in same)

    def for_run(self, settings: RunSettings | None) -> RunSettings:
        """The settings of a run (`Index.add(settings=...)`) on an Index opened with these:
        `settings`, which must run the model as these do; None: these."""
        if settings is None or settings.places_model_as(self):
            return settings or self
        raise UsageError(
            f"add(settings=...) runs the model on {settings.device} ({settings.precision}, "
            f"model {settings.model or 'as stored'}), this Index on {self.device} "
            f"({self.precision}, model {self.model or 'as stored'}); open the Index "
            "with those settings: Index(path, settings=...)"
        )

    def model_identity(self, stored: ModelIdentity | None, index_dir: Path) -> ModelIdentity:
        """The model: the one asked for, else what the index stored, else the default; another
        model than the stored one is refused (`model.identity.resolve`)."""
        return resolve(stored, self.model, self.pretrained, self.checkpoint, index_dir=index_dir)

    def for_kind(self, kind: str) -> RunSettings:
        """These settings for a model on `kind` (cpu, cuda, mps): batch size and workers flag >
        IDX_BATCH_SIZE / IDX_WORKERS > the kind's default; decoding in processes or threads."""
        return replace(
            self,
            batch_size=max(1, config.batch_size(self.batch_size, kind)),
            workers=config.workers(self.workers, kind),
            # the local engine's choice; Ray's tasks decode in their own processes anyway
            decode_processes=self.engine == "local" and config.decode_processes(kind),
        )

    def sizes(self) -> tuple[int, int, bool]:
        """(batch size, workers, decode in processes) of settings sized by `for_kind`."""
        if self.batch_size is None or self.workers is None or self.decode_processes is None:
            raise ValueError("these settings are not sized for a device yet (for_kind)")
        return self.batch_size, self.workers, self.decode_processes
