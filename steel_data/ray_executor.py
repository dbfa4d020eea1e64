"""The Ray executor: the local executor's plan, completion markers and global stages, run on a Ray cluster.

- Shards run as Ray tasks spread over the nodes, at most two per worker CPU in flight. Each reports its
  statistics as it completes (live progress); the driver merges them as the local executor does.
- Heavy operator state (OpenCC converters, KenLM models, tokenizers) is built once per worker process:
  the process keeps the job's configuration, operators included, from one shard to the next (Ray reuses
  a job's worker processes across tasks).
- Fault tolerance: a shard is done once its marker exists (written last, after its outputs, as in the
  local executor). When a worker or its node dies, its shards run again elsewhere; when the driver dies,
  rerunning the same command skips every finished shard and every finished global stage.
- The global SimHash stage runs as Ray tasks (`steel_data.dedup_distributed`): no task holds all
  fingerprints. The final parts are written by Ray tasks too.
- Memory: a Ray instance started here gets an object store of `object_store_memory` bytes; each shard
  and dedup task reserves `worker_memory` bytes (Ray places no more of them on a node than its memory
  holds), and a worker whose resident memory passes that budget drops its cached state after its shard.
  Every worker's peak resident memory is reported in `stats.json` (`executor.workers`).

Shared storage is required: every node reads the inputs and writes `OUTDIR/_work` and the outputs at the
same paths (NFS, a shared volume, a mounted bucket), as on any real cluster.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import socket
import time
import uuid
from collections import deque
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import ray
from ray.exceptions import RayError, RayTaskError

from steel_data import io as sio
from steel_data.dedup_distributed import deduplicate_distributed, default_partitions
from steel_data.executor import LocalExecutor, Progress, RunConfig, ShardSpec, dedup_summary, process_shard

MAX_SHARD_ATTEMPTS = 3
IN_FLIGHT_PER_WORKER = 2


def _status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (VmRSS: now; VmHWM: peak). Unlike ru_maxrss,
    VmHWM is this process's own: not the peak of the raylet it was forked from."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: the closest figure


def _rss_mb() -> float:
    return _status_mb("VmRSS")


def _peak_rss_mb() -> float:
    return _status_mb("VmHWM")


# Per worker process: the running job's configuration, whose operators build their heavy state (OpenCC,
# KenLM, tokenizers) on first use and keep it for every later shard this process runs. Ray reuses a job's
# worker processes from task to task, so a worker builds that state once, not once per shard.
_JOB: dict = {"key": None, "config": None, "shards": 0, "ops_built": 0}


def _shard_task(job_key: str, config: RunConfig, spec: ShardSpec, memory_budget: int | None) -> dict:
    if _JOB["key"] != job_key:  # this process's first shard of this job
        _JOB.update(key=job_key, config=None, shards=0, ops_built=0)
    if _JOB["config"] is None:  # first shard, or the state was dropped (memory budget)
        _JOB["config"] = config
    config = _JOB["config"]
    ops = config.recipe.ops
    before = sum(op._ready for op in ops)
    stats = process_shard(config, spec)
    _JOB["ops_built"] += sum(op._ready for op in ops) - before
    _JOB["shards"] += 1
    rss = _rss_mb()
    stats["worker"] = {"node": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(),
                       "pid": os.getpid(), "shards": _JOB["shards"], "ops_built": _JOB["ops_built"],
                       "rss_mb": round(rss, 1), "peak_rss_mb": round(_peak_rss_mb(), 1)}
    # which worker did the shard, and its memory: kept beside the shard, so a resumed job reports it too
    sio.write_json_atomic(Path(config.outdir) / "_work" / "shards" / f"{spec.index:05d}.worker.json",
                          stats["worker"])
    if memory_budget and rss * 2**20 > memory_budget:
        _release_memory()  # over budget: drop the cached state; the next shard rebuilds it
    return stats


def _release_memory() -> None:
    import ctypes
    import gc

    _JOB["config"] = None
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _warm_worker() -> None:
    from operators import registry

    registry.names()  # imports every operator module
    import steel_data.dedup_distributed  # noqa: F401

    time.sleep(0.2)  # held a moment, so that each warm-up task lands on a worker process of its own


def _final_part_task(config: RunConfig, spec: ShardSpec, drops: np.ndarray | None) -> int:
    return LocalExecutor(config)._final_part(spec, set(drops.tolist()) if drops is not None else None)


class RayEngine:
    """`steel_data.dedup_distributed`'s engine on Ray: each stage function becomes a Ray task."""

    def __init__(self, memory: int | None = None, max_retries: int = 3):
        self.memory = memory
        self.max_retries = max_retries
        self._remote: dict = {}

    def submit(self, fn, *args, num_returns: int = 1) -> list:
        key = (fn, num_returns)
        remote = self._remote.get(key)
        if remote is None:
            opts = {"num_returns": num_returns, "max_retries": self.max_retries, "num_cpus": 1}
            if self.memory:
                opts["memory"] = self.memory
            remote = self._remote[key] = ray.remote(fn).options(**opts)
        refs = remote.remote(*args)
        return list(refs) if num_returns > 1 else [refs]

    def get(self, handles: list) -> list:
        return ray.get(list(handles))


class RayExecutor(LocalExecutor):
    """Runs a recipe on a Ray cluster (`address`), or on a Ray instance it starts on this machine."""

    def __init__(self, config: RunConfig, progress: Progress | None = None, address: str | None = None, *,
                 object_store_memory: int | None = None, worker_memory: int | None = None,
                 dedup_partitions: int = 0):
        # Workers run elsewhere (other nodes, other working directories): every path must be absolute.
        config = dataclasses.replace(config, outdir=Path(config.outdir).resolve(),
                                     inputs=[os.path.abspath(i) for i in config.inputs])
        super().__init__(config, progress)
        self.address = address
        self.object_store_memory = object_store_memory
        self.worker_memory = worker_memory
        self.dedup_partitions = dedup_partitions
        self._started_ray = False
        self._retried = 0
        self._dedup_info: dict = {}
        self.startup_seconds = 0.0

    # -- cluster --------------------------------------------------------------------------------------
    def connect(self) -> None:
        """Join the cluster at `address`, reuse this process's Ray connection, or start a local instance."""
        t = time.perf_counter()
        if not ray.is_initialized():
            kwargs = {"include_dashboard": False, "log_to_driver": False, "logging_level": "WARNING"}
            if self.address:
                ray.init(address=self.address, **kwargs)
            else:
                os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private instance: nothing to log in to
                ray.init(num_cpus=self.config.workers or None, object_store_memory=self.object_store_memory,
                         **kwargs)
                self._started_ray = True
        # worker processes start and import the pipeline now, as part of start-up, not in the first shards
        warm = ray.remote(_warm_worker).options(num_cpus=1, scheduling_strategy="SPREAD")
        ray.get([warm.remote() for _ in range(self._worker_count())])
        self.startup_seconds = time.perf_counter() - t

    def run(self):
        try:
            self.connect()
            return super().run()
        finally:
            if self._started_ray:
                ray.shutdown()

    def _worker_count(self) -> int:
        return self.config.workers or max(int(ray.cluster_resources().get("CPU", 1)), 1)

    # -- shards ---------------------------------------------------------------------------------------
    def map_shards(self, todo: list[ShardSpec]) -> None:
        """Shard tasks, spread over the nodes, at most IN_FLIGHT_PER_WORKER per worker at a time (the
        rest wait here, not in the object store). A shard whose worker or node died is queued again."""
        if not todo:
            return
        workers = self._worker_count()
        options = {"num_cpus": 1, "scheduling_strategy": "SPREAD", "max_retries": 0}
        if self.worker_memory:
            options["memory"] = self.worker_memory
        task = ray.remote(_shard_task).options(**options)
        config_ref = ray.put(self.config)
        job_key = uuid.uuid4().hex
        queue = deque(todo)
        attempts: dict[int, int] = {}
        running: dict = {}  # result ref -> spec
        try:
            while queue or running:
                while queue and len(running) < IN_FLIGHT_PER_WORKER * workers:
                    spec = queue.popleft()
                    running[task.remote(job_key, config_ref, spec, self.worker_memory)] = spec
                (ref,), _ = ray.wait(list(running), num_returns=1)
                spec = running.pop(ref)
                try:
                    stats = ray.get(ref)
                except RayTaskError as exc:  # the shard itself failed, as it would locally: stop the job
                    raise exc.as_instanceof_cause() from None
                except RayError:  # its worker process or node died: run it again elsewhere
                    attempts[spec.index] = attempts.get(spec.index, 0) + 1
                    if attempts[spec.index] >= MAX_SHARD_ATTEMPTS:
                        raise RuntimeError(f"shard {spec.index} lost its worker {MAX_SHARD_ATTEMPTS} times") from None
                    self._retried += 1
                    queue.appendleft(spec)
                    continue
                self._report(stats)
        finally:
            for ref in running:
                ray.cancel(ref, force=True)

    # -- global stages --------------------------------------------------------------------------------
    def find_duplicates(self, specs: list[ShardSpec]) -> tuple[np.ndarray, dict]:
        paths = [str(self.work / "shards" / f"{s.index:05d}.parquet") for s in specs]
        p = self.config.recipe.dedup.params
        parts = self.dedup_partitions or default_partitions(
            sum(pq.ParquetFile(path).metadata.num_rows for path in paths), self._worker_count(),
            p.num_blocks, p.hamming_distance)
        res = deduplicate_distributed(paths, p.num_blocks, p.hamming_distance, engine=RayEngine(self.worker_memory),
                                      parts=parts, examples=10, members=5)
        self._dedup_info = {"partitions": res.partitions, "rounds": res.rounds,
                            "stage_seconds": {k: round(v, 3) for k, v in res.stage_seconds.items()},
                            "max_task_rows": res.max_task_rows, "peak_task_rss_mb": round(res.peak_task_rss_mb, 1)}
        sizes = [size for size, _ in res.examples]
        wanted = {order: (rank, fp) for rank, (_, docs) in enumerate(res.examples) for order, fp in docs}
        return res.drop_orders, dedup_summary(
            fingerprints=res.fingerprints, unique=res.unique_values, pairs=res.pairs,
            cluster_sizes=res.cluster_sizes, dropped=len(res.drop_orders), zero_docs=res.zero_docs,
            examples=self._describe_clusters(sizes, wanted), seconds=res.cpu_seconds)

    def final_parts(self, specs: list[ShardSpec], drop_orders: np.ndarray | None) -> int:
        task = ray.remote(_final_part_task).options(num_cpus=1, max_retries=3)
        config_ref = ray.put(self.config)
        refs = []
        for spec in specs:
            drops = None
            if drop_orders is not None:  # orders are (shard << 32) | row: a shard's drops are one slice
                lo, hi = np.searchsorted(drop_orders, [spec.index << 32, (spec.index + 1) << 32])
                drops = drop_orders[lo:hi]
            refs.append(task.remote(config_ref, spec, drops))
        return int(sum(ray.get(refs)))

    def _workers(self, specs: list[ShardSpec]) -> list[dict]:
        """Every worker that finished a shard of this job (this run or an earlier, interrupted one)."""
        workers: dict[tuple[str, int], dict] = {}
        for spec in specs:
            path = self.work / "shards" / f"{spec.index:05d}.worker.json"
            if not path.exists():
                continue
            info = sio.read_json(path)
            w = workers.setdefault((info["node"], info["pid"]), {
                "node": info["node"], "host": info["host"], "pid": info["pid"], "shards": 0, "ops_built": 0,
                "peak_rss_mb": 0.0})
            w["shards"] += 1
            w["ops_built"] = max(w["ops_built"], info["ops_built"])
            w["peak_rss_mb"] = max(w["peak_rss_mb"], info["peak_rss_mb"])
        return sorted(workers.values(), key=lambda w: (w["node"], w["pid"]))

    def _finish(self, specs: list[ShardSpec]) -> dict:
        out = super()._finish(specs)
        workers = self._workers(specs)
        out["executor"] = {
            "kind": "ray",
            "address": self.address or "local",
            "nodes": len({w["node"] for w in workers}),
            "startup_seconds": round(self.startup_seconds, 3),
            "workers": workers,
            "peak_worker_rss_mb": max((w["peak_rss_mb"] for w in workers), default=None),
            "worker_memory_mb": self.worker_memory / 2**20 if self.worker_memory else None,
            "retried_shards": self._retried,
            "dedup": self._dedup_info,
        }
        return out
