"""The Ray engine: decoding as Ray tasks on CPUs, embedding in a pool of actors that each load the
model once (a GPU each where the cluster has GPUs), results streamed back to the driver in input
order. Built on Ray Data: `map_batches` with a function (tasks) then with a callable class (actors),
the pattern of Ray's batch inference guide.

Ray retries a task or restarts an actor whose worker died, so a batch may be computed twice; the
driver sees each file once and commits it once (indexer.ingest.pipeline), and a rerun after the driver
itself died submits only what the catalog does not have. A bad file is a skip row, never a failed
task (reader.prepare).

Without an address (--ray-address, RAY_ADDRESS) a Ray instance is started on this machine for the
run and stopped after it, listening on loopback only (start_local); one already started in this
process (ray.init) is used as it is, and a cluster named by its address is the user's to secure. The
driver loads the model on its CPU once to take its preprocessing for the decode tasks; workers
find the model the way the driver names it (a checkpoint path must exist on every node).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from idx import config
from idx.errors import IdxError, UsageError
from idx.indexer.files import scan
from idx.indexer.files.reader import Prepared, Preprocessing, prepare
from idx.indexer.ingest.engines.embedding import embed_rows

log = logging.getLogger(__name__)

EXTRA = "pip install 'idx-clip[ray]'"
#: Settings passed on to Ray's workers: object storage's (AWS_*), the model hub's (HF_*), idx's
#: own (decode limits, caches) but not the index, which only the driver opens.
FORWARDED_PREFIXES = ("AWS_", "HF_", "IDX_")
FORWARDED_NAMES = ("XDG_CACHE_HOME",)
NOT_FORWARDED = frozenset({"IDX_INDEX"})
#: Files per decode task: enough to amortise a task's start, few enough to spread a small run.
TASK_FILES = 16
#: The CPU share an embedding actor asks for on nodes without GPUs. Its torch threads use the
#: node's cores whatever it asks; a whole CPU each can leave none for the decode tasks on a small
#: node (the job then waits forever), and would let Ray Data fuse decoding into the actors.
ACTOR_CPUS = 0.5
#: Seconds the embedding actors may take to start (load the model) before the run fails.
ACTORS_WAIT_S = 600
#: Fault injection for the tests: "decode:FILE" or "embed:FILE" (comma-separated) makes the first
#: worker of that stage that creates FILE exit at once, mid-batch, as a crashed or pre-empted node
#: would.
FAULT_ENV = "IDX_RAY_FAULT"
#: The one address of the Ray instance idx starts for itself. Ray runs whatever code reaches its
#: ports (its docs: never expose it to an untrusted network), and a node started on 127.0.0.1
#: listens there only; on any other address its gcs_server, raylet and workers listen on every
#: interface.
LOOPBACK = "127.0.0.1"


def import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401 - the extra installs both
    except ImportError:
        raise UsageError(f"--engine ray needs Ray: {EXTRA}") from None
    return ray


def forwarded_env() -> dict[str, str]:
    return {
        name: value
        for name, value in os.environ.items()
        if (name.startswith(FORWARDED_PREFIXES) or name in FORWARDED_NAMES)
        and name not in NOT_FORWARDED
    }


class SortedHashes:
    """The content hashes the catalog has, as one sorted array: put in the object store once and
    read there without a copy by every decode task (a set would be unpickled by each)."""

    def __init__(self, hashes: Iterable[str]):
        self.array = np.array(sorted(hashes), dtype="S64")

    def __contains__(self, sha: object) -> bool:
        key = str(sha).encode()
        at = int(np.searchsorted(self.array, key))
        return at < len(self.array) and self.array[at] == key


def _fault(stage: str) -> None:
    for spec in os.environ.get(FAULT_ENV, "").split(","):
        name, _, marker = spec.partition(":")
        if name != stage:
            continue
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue
        os._exit(1)


def _column(rows: list[Any]) -> np.ndarray:
    column = np.empty(len(rows), dtype=object)
    column[:] = rows
    return column


def prepare_files(batch: dict[str, np.ndarray], known: Any, steps: Any) -> dict[str, np.ndarray]:
    """A decode task: reader.prepare for each file of a chunk (one `row` column out: a
    scan.Skip or a reader.Prepared, its tensor set when its content is new)."""
    import ray

    known, steps = ray.get(known), ray.get(steps)
    _fault("decode")
    rows = [
        prepare(
            scan.FileEntry(str(p), int(b), int(m), int(c), str(e) or None), known, lambda: steps
        )
        for p, b, m, c, e in zip(
            batch["path"], batch["bytes"], batch["mtime_ns"], batch["ctime_ns"], batch["etag"]
        )
    ]
    return {"row": _column(rows)}


class EmbedBatch:
    """An embedding actor (Ray Data's callable class): the model loaded once, in __init__; each
    call embeds the new content of one batch of rows (engines.embedding.embed_rows)."""

    def __init__(self, identity: str, device: str, precision: str, check: bool, share: int):
        import ray
        import torch

        from idx.indexer.model.encoder import Encoder
        from idx.indexer.model.identity import ModelIdentity

        if device == "cpu":  # Ray sets one thread per CPU asked for; this node's cores are ours
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // share))
        self.encoder = Encoder.load(ModelIdentity.from_json(identity), device, precision)
        self.check = check
        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = list(batch["row"])
        new = [r for r in rows if isinstance(r, Prepared) and r.tensor is not None]
        if new:
            _fault("embed")
            embed_rows(self.encoder, new, self.check).node = self.node
            self.check = False
        return {"row": _column(rows)}


class RayEngine:
    name = "ray"

    def __init__(
        self,
        encoder_factory: Callable[[], Any],
        *,
        identity: Any,
        device: str,
        precision: str,
        batch_size: int,
        check: bool,
        address: str | None,
    ):
        self.encoder_factory = encoder_factory
        self.model = identity
        self.device, self.precision = device, precision
        self.batch_size, self.check, self.address = batch_size, check, address
        self.identity: Any = None
        self.seconds_embedding = 0.0  # the actors embed; this process waits for them
        self.seconds_starting = 0.0

    def stream(
        self, todo: list[scan.FileEntry], known: frozenset[str]
    ) -> Iterator[Prepared | scan.Skip]:
        if not todo:
            return
        start = time.perf_counter()
        ray = import_ray()
        started = self._connect(ray)
        try:
            encoder = self.encoder_factory()  # here for its preprocessing only
            self.identity = encoder.identity
            self.seconds_starting = time.perf_counter() - start
            yield from self._run(ray, todo, known, Preprocessing.of(encoder))
        finally:
            if started:
                ray.shutdown()

    def _connect(self, ray: Any) -> bool:
        """Whether this run started Ray (and so stops it)."""
        if ray.is_initialized():
            return False
        try:
            if self.address:
                with _loopback_kept(ray):  # a cluster on 127.0.0.1 is reached there
                    ray.init(address=self.address, **QUIET)
            else:
                start_local(ray, num_cpus=(os.cpu_count() or 1) + 1)
        except ConnectionError as exc:
            raise UsageError(
                f"cannot reach the Ray cluster at {self.address}: {exc}; check --ray-address "
                "(or RAY_ADDRESS), or leave it out to start Ray on this machine"
            ) from None
        return True

    def _placement(self, ray: Any) -> tuple[int, dict[str, Any], str, int]:
        """(actors, their resources, their device, actors per node)."""
        gpus = int(ray.cluster_resources().get("GPU", 0))
        nodes = max(1, sum(1 for n in ray.nodes() if n.get("Alive")))
        on_gpu = gpus > 0 and self.device.split(":")[0] in ("auto", "cuda")
        actors = config.ray_actors() or (gpus if on_gpu else nodes)
        if on_gpu:
            return actors, {"num_gpus": 1}, "cuda", math.ceil(actors / nodes)
        return actors, {"num_cpus": ACTOR_CPUS}, "cpu", math.ceil(actors / nodes)

    def _run(
        self, ray: Any, todo: list[scan.FileEntry], known: frozenset[str], steps: Preprocessing
    ) -> Iterator[Prepared | scan.Skip]:
        actors, resources, device, share = self._placement(ray)
        env = {"env_vars": forwarded_env()}
        with _data_settings(ray):
            files = ray.data.from_items(
                [
                    {
                        "path": e.path,
                        "bytes": e.bytes,
                        "mtime_ns": e.mtime_ns,
                        "ctime_ns": e.ctime_ns,
                        "etag": e.etag or "",
                    }
                    for e in todo
                ],
                override_num_blocks=max(1, math.ceil(len(todo) / TASK_FILES)),
            )
            decoded = files.map_batches(
                prepare_files,
                fn_kwargs={"known": ray.put(SortedHashes(known)), "steps": ray.put(steps)},
                batch_size=TASK_FILES,
                num_cpus=1,
                runtime_env=env,
            )
            embedded = decoded.map_batches(
                EmbedBatch,
                fn_constructor_kwargs={
                    "identity": self.model.to_json(),
                    "device": device,
                    "precision": self.precision,
                    "check": self.check,
                    "share": share,
                },
                batch_size=self.batch_size,
                compute=ray.data.ActorPoolStrategy(size=actors),
                runtime_env=env,
                **resources,
            )
            try:
                for batch in embedded.iter_batches(batch_size=None, batch_format="numpy"):
                    yield from batch["row"]
            except ray.exceptions.GetTimeoutError:
                raise UsageError(
                    f"Ray could not start {actors} embedding actors ({resources} each) within "
                    f"{ACTORS_WAIT_S}s: the cluster lacks the resources; add nodes, or ask for "
                    "fewer actors with IDX_RAY_ACTORS"
                ) from None


#: ray.init's settings for every instance idx starts or joins: its own log lines at WARNING, no
#: dashboard (one more web server, whose job API runs code).
QUIET: dict[str, Any] = {"logging_level": logging.WARNING, "include_dashboard": False}


def start_local(ray: Any, num_cpus: int) -> None:
    """Start a new Ray instance of this process's own (address="local": not a cluster `ray start`
    left running on this machine, whose CPUs we could not set) that listens and talks on
    LOOPBACK only; stop it with ray.shutdown()."""
    with _loopback_kept(ray):
        ray.init(address="local", num_cpus=num_cpus, _node_ip_address=LOOPBACK, **QUIET)
    address = ray.util.get_node_ip_address()
    if not ipaddress.ip_address(address).is_loopback:
        ray.shutdown()
        raise IdxError(
            f"the Ray instance started for this run took the address {address}, not {LOOPBACK}, "
            f"so it would listen on this machine's network interfaces (Ray {ray.__version__} "
            "does not keep 127.0.0.1 the way idx asks it to); it was stopped. Start Ray "
            f"yourself on loopback (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 ray start --head "
            f"--node-ip-address={LOOPBACK}) and name it with --ray-address"
        )


@contextlib.contextmanager
def _loopback_kept(ray: Any) -> Iterator[None]:
    """While ray.init runs, 127.0.0.1 stays 127.0.0.1: Ray on Linux turns it (a node's address
    asked for, a cluster's address given) into this machine's network address unless
    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, a setting it reads once, when imported, into
    ray_constants.ENABLE_RAY_CLUSTER. Held off for the call only, not the process, whose later
    ray.init may still start or join a cluster beyond this machine."""
    constants: Any = getattr(getattr(ray, "_private", None), "ray_constants", None)  # a module
    if not hasattr(constants, "ENABLE_RAY_CLUSTER"):  # another Ray: start_local checks the result
        yield
        return
    saved = constants.ENABLE_RAY_CLUSTER
    constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        constants.ENABLE_RAY_CLUSTER = saved


@contextlib.contextmanager
def _data_settings(ray: Any) -> Iterator[None]:
    """Ray Data's settings for one run, put back after it (the process may use Ray otherwise)."""
    with warnings.catch_warnings():  # Ray Data 2.60's own defaults warn about themselves
        warnings.simplefilter("ignore", DeprecationWarning)
        context = ray.data.DataContext.get_current()
    wanted = {
        "enable_progress_bars": False,  # progress is the driver's (ProgressEvent)
        "enable_fallback_to_arrow_object_ext_type": True,  # rows are Python objects
        # every actor up (model loaded) before work starts: all share it, and a cluster that
        # cannot place them fails with a message instead of waiting forever
        "wait_for_min_actors_s": ACTORS_WAIT_S,
    }
    saved = {name: getattr(context, name) for name in wanted}
    order = context.execution_options.preserve_order
    data_log = logging.getLogger("ray.data")
    level = data_log.level
    for name, value in wanted.items():
        setattr(context, name, value)
    context.execution_options.preserve_order = True  # new images get ids in path order
    data_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(context, name, value)
        context.execution_options.preserve_order = order
        data_log.setLevel(level)
