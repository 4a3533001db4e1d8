"""Where the model runs: resolve --device (auto, cpu, cuda, cuda:N, mps) against what torch sees.

`auto` takes CUDA, then Apple's MPS, then the CPU. A device that is not there is a usage error
that names the ones that are. `cuda` means every visible GPU (one model replica each); `cuda:N`
one of them.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace

from idx.errors import UsageError


@dataclass(frozen=True)
class Device:
    """A resolved device: `kind` cpu|cuda|mps, the torch device names to use (several for
    `cuda` on a multi-GPU machine), and how it was chosen."""

    kind: str
    names: tuple[str, ...]
    asked: str

    @property
    def name(self) -> str:
        return self.names[0] if len(self.names) == 1 else f"{self.kind} x{len(self.names)}"

    def describe(self) -> str:
        how = " (auto)" if self.asked == "auto" else ""
        return f"{', '.join(self.names)}{how}"


def available() -> list[str]:
    """The devices torch can use here, e.g. ['cpu', 'cuda', 'cuda:0', 'cuda:1']."""
    import torch

    found = ["cpu"]
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus:
        found += ["cuda", *(f"cuda:{i}" for i in range(gpus))]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.append("mps")
    return found


def resolve(asked: str) -> Device:
    """The Device for `asked` (auto|cpu|cuda|cuda:N|mps); UsageError when it is not here.
    `cpu`, and `auto` on a machine with no GPU driver, need no torch to answer."""
    asked = (asked or "auto").strip().lower()
    if asked == "cpu" or (asked == "auto" and no_accelerator()):
        return Device("cpu", ("cpu",), asked)
    here = available()
    if asked == "auto":
        kind = "cuda" if "cuda" in here else "mps" if "mps" in here else "cpu"
        return replace(resolve(kind), asked="auto")
    if asked not in here:
        if asked not in ("cpu", "cuda", "mps") and not (
            asked.startswith("cuda:") and asked[5:].isdigit()
        ):
            raise UsageError(
                f"--device {asked!r} is not a device; use auto, cpu, cuda, cuda:N or mps"
            )
        raise UsageError(
            f"--device {asked} is not available on this machine; available: {', '.join(here)} "
            "(or auto)"
        )
    if asked == "cuda":
        return Device("cuda", tuple(d for d in here if d.startswith("cuda:")), asked)
    return Device(asked.split(":")[0], (asked,), asked)


def for_precision(asked: str | None, precision: str) -> str:
    """The device to resolve for a model in `precision`. int8 runs on the CPU only: `auto` then
    means the CPU, and a GPU asked for by name is a UsageError (before a file is read)."""
    asked = (asked or "auto").strip().lower()
    if precision != "int8" or asked == "cpu":
        return asked
    if asked == "auto":
        return "cpu"
    raise UsageError(
        f"--precision int8 runs on the CPU only, not on {asked}; on a GPU fp16 is used already "
        "(drop --precision, or add --device cpu)"
    )


def no_accelerator() -> bool:
    """Whether torch surely sees no GPU here: Linux without NVIDIA's driver, AMD's ROCm or WSL's
    GPU device. Elsewhere (macOS: MPS) only torch can tell."""
    devices = ("/proc/driver/nvidia", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")
    return sys.platform.startswith("linux") and not any(os.path.exists(d) for d in devices)


def kind(asked: str) -> str:
    """cpu, cuda or mps for `asked`, importing torch only for `auto`."""
    asked = (asked or "auto").strip().lower()
    if asked == "auto":
        return resolve(asked).kind
    return asked.split(":")[0]
