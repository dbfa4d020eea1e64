"""The Ray executor: the local executor's plan, completion markers and global stages, run on a Ray cluster.

- Shards run on a pool of Ray actors, one per worker CPU, spread over the nodes. An actor receives the
  job's configuration once, so heavy operator state (OpenCC converters, KenLM models, tokenizers) is
  built once per worker and reused for every shard it processes. Each finished shard is reported as it
  completes (live progress; per-op statistics are the shards' own, merged by the driver).
- Fault tolerance: a shard is done once its marker exists (written last, after its outputs, exactly as
  the local executor does). When a worker or its node dies, the shards it held go back to the queue and
  a replacement worker is started; when the driver dies, rerunning the same command skips every
  finished shard and the finished global stages.
- The global SimHash stage runs as Ray tasks (`steel_data.dedup_distributed`): no task holds all
  fingerprints. The final parts are written by Ray tasks too.
- Memory: the object store of a Ray instance started here is `object_store_memory` bytes; each worker
  and dedup task reserves `worker_memory` bytes (Ray then places no more of them on a node than its
  memory holds), and a worker whose resident memory grows past it is replaced after its shard. The peak
  resident memory of every worker is reported in `stats.json` (`executor.workers`).

Shared storage is required: every node reads the inputs and writes `OUTDIR/_work` and the outputs at the
same paths (NFS, a shared volume, a mounted bucket), as on any real cluster.

Only this module and `steel_data.dedup_distributed`'s callers here import `ray`.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import socket
import time
from collections import deque
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import ray
from ray.exceptions import RayError, RayTaskError

from steel_data.dedup_distributed import deduplicate_distributed, default_partitions
from steel_data.executor import LocalExecutor, Progress, RunConfig, ShardSpec, dedup_summary, process_shard

MAX_SHARD_ATTEMPTS = 3
IN_FLIGHT_PER_WORKER = 2


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


@ray.remote
class ShardWorker:
    """Processes shards with one long-lived copy of the recipe (its operators' heavy state included)."""

    def __init__(self, config: RunConfig):
        self.config = config
        self.shards = 0
        self.ops_built = 0

    def ready(self) -> dict:
        return self._identity()

    def _identity(self) -> dict:
        return {"node": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(), "pid": os.getpid()}

    def run(self, spec: ShardSpec) -> dict:
        ops = self.config.recipe.ops
        before = sum(op._ready for op in ops)
        stats = process_shard(self.config, spec)
        self.ops_built += sum(op._ready for op in ops) - before
        self.shards += 1
        stats["worker"] = self._identity() | {
            "shards": self.shards, "ops_built": self.ops_built,
            "rss_mb": round(_rss_mb(), 1), "peak_rss_mb": round(_peak_rss_mb(), 1),
        }
        return stats


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
        self._workers: dict[tuple[str, int], dict] = {}
        self._retried = 0
        self._replaced = 0
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
        self.startup_seconds = time.perf_counter() - t

    def run(self):
        self.connect()
        try:
            return super().run()
        finally:
            if self._started_ray:
                ray.shutdown()

    def _worker_count(self) -> int:
        return self.config.workers or max(int(ray.cluster_resources().get("CPU", 1)), 1)

    # -- shards ---------------------------------------------------------------------------------------
    def map_shards(self, todo: list[ShardSpec]) -> None:
        if not todo:
            return
        target = min(self._worker_count(), len(todo))
        config_ref = ray.put(self.config)
        options = {"num_cpus": 1, "scheduling_strategy": "SPREAD", "max_restarts": 0}
        if self.worker_memory:
            options["memory"] = self.worker_memory

        queue = deque(todo)
        attempts: dict[int, int] = {}
        starting: dict = {}  # ready ref -> actor
        idle: dict = {}  # actor -> shards in flight
        running: dict = {}  # result ref -> (actor, spec)
        spawned = 0

        def spawn() -> None:
            nonlocal spawned
            actor = ShardWorker.options(**options).remote(config_ref)
            starting[actor.ready.remote()] = actor
            spawned += 1

        def retire(actor) -> None:
            idle.pop(actor, None)
            ray.kill(actor, no_restart=True)

        for _ in range(target):
            spawn()
        try:
            while queue or running:
                for actor in list(idle):
                    while queue and idle[actor] < IN_FLIGHT_PER_WORKER:
                        spec = queue.popleft()
                        running[actor.run.remote(spec)] = (actor, spec)
                        idle[actor] += 1
                if not running and not starting:
                    raise RuntimeError("no Ray worker is left to run the remaining shards")
                ready, _ = ray.wait(list(running) + list(starting), num_returns=1)
                ref = ready[0]
                if ref in starting:
                    actor = starting.pop(ref)
                    try:
                        ray.get(ref)
                        idle[actor] = 0
                    except RayError:
                        self._replace(spawn, spawned, target)
                    continue
                actor, spec = running.pop(ref)
                try:
                    stats = ray.get(ref)
                except RayTaskError as exc:  # the shard itself failed (as it would locally): stop the job
                    raise exc.as_instanceof_cause() from None
                except RayError:  # the worker or its node died: the shard goes back to the queue
                    attempts[spec.index] = attempts.get(spec.index, 0) + 1
                    if attempts[spec.index] >= MAX_SHARD_ATTEMPTS:
                        raise RuntimeError(f"shard {spec.index} lost its worker {MAX_SHARD_ATTEMPTS} times") from None
                    self._retried += 1
                    queue.appendleft(spec)
                    if actor in idle:
                        retire(actor)
                        self._replace(spawn, spawned, target)
                    continue
                idle[actor] -= 1
                self._record_worker(stats.get("worker", {}))
                self._report(stats)
                if self.worker_memory and stats["worker"]["rss_mb"] * 2**20 > self.worker_memory and queue:
                    retire(actor)  # grown past its budget: a fresh process takes over
                    self._replace(spawn, spawned, target)
        finally:
            for actor in list(idle) + list(starting.values()):
                ray.kill(actor, no_restart=True)

    def _replace(self, spawn, spawned: int, target: int) -> None:
        if spawned < 4 * target + 4:  # bounded: a job whose workers keep dying fails instead of looping
            self._replaced += 1
            spawn()

    def _record_worker(self, info: dict) -> None:
        if not info:
            return
        key = (info["node"], info["pid"])
        self._workers[key] = {k: info[k] for k in ("node", "host", "pid", "shards", "ops_built", "peak_rss_mb")}

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
                            "stage_seconds": {k: round(v, 3) for k, v in res.stage_seconds.items()}}
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

    def _finish(self, specs: list[ShardSpec]) -> dict:
        out = super()._finish(specs)
        workers = sorted(self._workers.values(), key=lambda w: (w["node"], w["pid"]))
        out["executor"] = {
            "kind": "ray",
            "address": self.address or "local",
            "nodes": len({w["node"] for w in workers}),
            "startup_seconds": round(self.startup_seconds, 3),
            "workers": workers,
            "peak_worker_rss_mb": max((w["peak_rss_mb"] for w in workers), default=None),
            "worker_memory_mb": self.worker_memory / 2**20 if self.worker_memory else None,
            "retried_shards": self._retried,
            "replaced_workers": self._replaced,
            "dedup": self._dedup_info,
        }
        return out
