"""The local executor: shards, worker processes, completion markers, the global dedup stage.

Layout of OUTDIR:
  data/part-NNNNN.parquet   cleaned documents (final)
  stats.json                per-op statistics, dedup, audits, accounting
  dropped/OP.jsonl          a bounded sample of what each op dropped, with the statistic's value
  quarantine/NNNNN.jsonl    records that could not be read or made an op fail, with file, line, reason
  _work/                    plan, per-shard outputs and markers (what makes a rerun resume)

A shard is a record range of one input file. A shard counts as done only once its marker exists, and
the marker is written after every output of the shard has been renamed into place, so a job killed at
any moment and rerun redoes unfinished shards only and produces exactly the uninterrupted output.
"""

from __future__ import annotations

import gc
import hashlib
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import orjson
import pyarrow as pa

from steel_data import io as sio
from steel_data.dedup import deduplicate
from steel_data.pipeline import new_op_stats, run_batch
from steel_data.readers import Source, TextMapping, count_records, expand_inputs, line_offsets, read_shard
from steel_data.recipe import Recipe
from steel_data.schema import ORDER, SIMHASH, order_of, strip_internal
from steel_data.stats import OpStats, RunStats

# Small enough that two workers balance on a few thousand documents, large enough that per-shard costs
# (a task, a parquet file, a marker) stay negligible.
DEFAULT_SHARD_SIZE = 1024
DEFAULT_BATCH_SIZE = 1024


class JobMismatch(RuntimeError):
    """OUTDIR holds work of a different job (other recipe, inputs or sharding)."""


@dataclass(frozen=True)
class ShardSpec:
    index: int
    source: Source
    start: int
    stop: int
    offset: int | None = None  # byte offset of record `start` where the source can seek (plain JSONL)


@dataclass
class RunConfig:
    recipe: Recipe
    inputs: list[str]
    outdir: Path
    mapping: TextMapping = field(default_factory=TextMapping)
    workers: int = 0  # 0: all cores
    shard_size: int = DEFAULT_SHARD_SIZE
    batch_size: int = DEFAULT_BATCH_SIZE
    output_format: str = "parquet"

    def fingerprint(self) -> str:
        ident = {
            "recipe": self.recipe.to_dict(),
            "inputs": [os.path.abspath(i) for i in self.inputs],
            "mapping": asdict(self.mapping),
            "shard_size": self.shard_size,
            "output_format": self.output_format,
        }
        return hashlib.sha256(orjson.dumps(ident, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass
class RunResult:
    outdir: Path
    stats: dict
    seconds: float
    shards_done_before: int


Progress = Callable[[str, dict], None]


def plan_shards(sources: list[Source], shard_size: int) -> list[ShardSpec]:
    specs = []
    for source in sources:
        n = count_records(source)
        offsets = line_offsets(source, shard_size)
        for k, start in enumerate(range(0, max(n, 1), shard_size)):
            offset = offsets[k] if offsets is not None and k < len(offsets) else None
            specs.append(ShardSpec(len(specs), source, start, min(start + shard_size, n), offset))
    return specs


class LocalExecutor:
    """Runs a recipe over local files with N worker processes; resumable per shard."""

    def __init__(self, config: RunConfig, progress: Progress | None = None):
        self.config = config
        self.progress = progress or (lambda event, data: None)
        self.out = Path(config.outdir)
        self.work = self.out / "_work"

    # -- planning -------------------------------------------------------------------------------------
    def prepare(self) -> list[ShardSpec]:
        """Plan the shards, or reload the plan of an interrupted run of the same job."""
        cfg = self.config
        plan_path = self.work / "plan.json"
        fingerprint = cfg.fingerprint()
        if plan_path.exists():
            plan = sio.read_json(plan_path)
            if plan["job"] != fingerprint:
                raise JobMismatch(
                    f"{self.out} holds the output of a different job (recipe, inputs or options differ); "
                    "choose another output folder or remove it"
                )
            return [ShardSpec(**{**s, "source": Source(**s["source"])}) for s in plan["shards"]]
        specs = plan_shards(expand_inputs(cfg.inputs), cfg.shard_size)
        sio.write_json_atomic(plan_path, {"job": fingerprint, "shards": [asdict(s) for s in specs]})
        return specs

    # -- running --------------------------------------------------------------------------------------
    def run(self) -> RunResult:
        start = time.perf_counter()
        specs = self.prepare()
        todo = [s for s in specs if not self._marker(s.index).exists()]
        done_before = len(specs) - len(todo)
        total_records = sum(s.stop - s.start for s in specs)
        self.progress("start", {"shards": len(specs), "todo": len(todo), "records": total_records,
                                "done_records": sum(s.stop - s.start for s in specs if s not in todo)})
        self.map_shards(todo)
        stats = self._finish(specs)
        seconds = time.perf_counter() - start
        stats["wall_seconds"] = round(seconds, 3)
        sio.write_json_atomic(self.out / "stats.json", stats)
        if self.config.recipe.tokenize is not None:  # the recipe's optional last stage: token shards
            stats["tokenize"] = self._tokenize()
            sio.write_json_atomic(self.out / "stats.json", stats)
        self.progress("done", stats)
        return RunResult(outdir=self.out, stats=stats, seconds=seconds, shards_done_before=done_before)

    def map_shards(self, todo: list[ShardSpec]) -> None:
        """Run `process_shard` for every unfinished shard; report each as it completes. Executors for
        other back-ends (Ray) override only this step: planning, resume and the global stages are shared."""
        workers = self.config.workers or os.cpu_count() or 1
        if workers == 1 or len(todo) <= 1:
            for spec in todo:
                self._report(process_shard(self.config, spec))
            return
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # Heavy operator state (OpenCC tables, KenLM, ftfy) is built once here and inherited by the forked
        # workers copy-on-write; nothing is pickled per task (a config sent with every task would be
        # unpickled per shard and every heavy operator rebuilt).
        global _WORKER_CONFIG
        for op in self.config.recipe.ops:
            op.ensure_ready()
        _WORKER_CONFIG = self.config
        # Objects made so far are moved out of the collector's reach: a child's collections would otherwise
        # walk them and, by touching their reference counts, copy the parent's pages into every worker.
        gc.freeze()
        try:
            with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=mp.get_context("fork")) as pool:
                futures = [pool.submit(_process_shard_in_worker, spec) for spec in todo]
                for fut in as_completed(futures):
                    self._report(fut.result())
        finally:
            gc.unfreeze()  # a long-lived caller (the service's job worker) collects them again

    def _tokenize(self) -> dict:
        from steel_data.tokenize import run_stage

        res = run_stage(self.config.recipe.tokenize, self.out, self.config.recipe.text_key, self.config.workers)
        m = res.manifest
        return {"output": str(res.output), "shards": len(m.shards), "docs": m.docs, "tokens": m.tokens,
                "windows": m.windows, "seconds": round(res.seconds, 3)}

    def _report(self, shard_stats: dict) -> None:
        self.progress("shard", shard_stats)

    def _marker(self, index: int) -> Path:
        return self.work / "shards" / f"{index:05d}.done"

    # -- global stages --------------------------------------------------------------------------------
    def _finish(self, specs: list[ShardSpec]) -> dict:
        cfg = self.config
        merged = RunStats()
        for spec in specs:
            merged.merge(RunStats.from_json(sio.read_json(self.work / "shards" / f"{spec.index:05d}.stats.json")))
        dedup = cfg.recipe.dedup
        labels = cfg.recipe.op_labels()
        dedup_info = None
        if dedup is not None:
            dedup_info = self._dedup_stage(specs, merged.ops[labels[-1]])
        drop_orders = dedup_info["drop_orders"] if dedup_info else None
        merged.output_docs = self.final_parts(specs, drop_orders)
        self._write_samples(merged)
        out = merged.to_json(with_sketch=False)
        out["recipe"] = cfg.recipe.name
        out["outputs"] = {"data": str(self.out / "data"), "dropped": str(self.out / "dropped"),
                          "quarantine": str(self.out / "quarantine")}
        if dedup_info:
            out["dedup"] = dedup_info["summary"]
            out["audits"] = dedup_info["audits"]
        return out

    def _dedup_stage(self, specs: list[ShardSpec], book: OpStats) -> dict:
        done = self.work / "dedup.done"
        result_path = self.work / "dedup.json"
        drop_path = self.work / "dedup_drop.npy"
        if not done.exists():
            drop_orders, summary = self.find_duplicates(specs)
            summary["empty_fingerprint_docs"] = book.extra.get("empty_fingerprints", 0)
            sio.write_bytes_atomic(drop_path, _npy_bytes(np.sort(drop_orders)))
            sio.write_json_atomic(result_path, summary)
            done.touch()
        summary = sio.read_json(result_path)
        drop_orders = np.load(drop_path)
        book.seconds += summary["seconds"]
        book.dropped = summary["duplicates_dropped"]
        book.docs_out = book.docs_in - book.dropped
        book.extra.update({k: v for k, v in summary.items() if k not in ("seconds",)})
        audits = []
        n = summary["fingerprints"]
        empty = summary["empty_fingerprint_docs"]
        if n and empty / n > 0.05:
            p = self.config.recipe.dedup.params
            audits.append({
                "op": book.name,
                "level": "warning",
                "message": (
                    f"{empty} of {n} documents ({empty / n:.1%}) yield no shingle under tokenization "
                    f"'{p.tokenization}' with window {p.window_size}; they all get SimHash 0 and collapse into "
                    "one duplicate cluster, so all but the first are dropped. Chinese text has few spaces: "
                    "consider tokenization: character, or empty_fingerprint_fallback: character."
                ),
                "empty_share": empty / n,
            })
        return {"drop_orders": drop_orders, "summary": summary, "audits": audits}

    def find_duplicates(self, specs: list[ShardSpec]) -> tuple[np.ndarray, dict]:
        """The global SimHash stage over the shards' fingerprints: the input orders of the documents to
        drop, and the summary (see `dedup_summary`). This one holds every fingerprint in one process; the
        Ray executor overrides it with a partitioned, distributed stage that gives the same result."""
        start = time.process_time()
        orders, fps = [], []
        for spec in specs:
            t = sio.read_parquet(self.work / "shards" / f"{spec.index:05d}.parquet", columns=[ORDER, SIMHASH])
            orders.append(t.column(ORDER).to_numpy())
            fps.append(t.column(SIMHASH).to_numpy())
        order = np.concatenate(orders) if orders else np.empty(0, np.int64)
        fp = np.concatenate(fps).astype(np.uint64) if fps else np.empty(0, np.uint64)
        sort = np.argsort(order, kind="stable")
        order, fp = order[sort], fp[sort]
        p = self.config.recipe.dedup.params
        res = deduplicate(fp, p.num_blocks, p.hamming_distance)
        drop_orders = order[~res.keep]
        return drop_orders, dedup_summary(
            fingerprints=len(fp), unique=res.unique_values, pairs=res.pairs, cluster_sizes=res.cluster_sizes,
            dropped=len(drop_orders), zero_docs=int((fp == 0).sum()),
            examples=self._cluster_examples(order, fp, res.cluster_of), seconds=time.process_time() - start)

    def final_parts(self, specs: list[ShardSpec], drop_orders: np.ndarray | None) -> int:
        """Write each shard's final part (its documents less the dropped duplicates); documents written."""
        drops = set(drop_orders.tolist()) if drop_orders is not None else None
        return sum(self._final_part(spec, drops) for spec in specs)

    def _cluster_examples(self, order, fp, cluster_of, clusters: int = 10, members: int = 5) -> list[dict]:
        """The largest duplicate clusters with their first members (id, SimHash, text excerpt), in input order."""
        if len(order) == 0:
            return []
        labels, first, sizes = np.unique(cluster_of, return_index=True, return_counts=True)
        big = np.argsort(-sizes, kind="stable")[:clusters]
        big = [b for b in big if sizes[b] > 1]
        wanted: dict[int, tuple[int, int]] = {}  # order -> (cluster rank, simhash)
        for rank, b in enumerate(big):
            for pos in np.nonzero(cluster_of == labels[b])[0][:members]:
                wanted[int(order[pos])] = (rank, int(fp[pos]))
        return self._describe_clusters([int(sizes[b]) for b in big], wanted)

    def _describe_clusters(self, sizes: list[int], wanted: dict[int, tuple[int, int]]) -> list[dict]:
        """`sizes[rank]` of each example cluster and `wanted`: member order -> (rank, SimHash)."""
        found: dict[int, dict] = {}
        for index in sorted({o >> 32 for o in wanted}):  # the shard index is the order's high half
            t = sio.read_parquet(self.work / "shards" / f"{index:05d}.parquet",
                              columns=[ORDER, "id", self.config.recipe.text_key])
            for o, doc_id, text in zip(*(t.column(c).to_pylist() for c in t.column_names)):
                if o in wanted:
                    found[o] = {"id": doc_id, "simhash": f"{wanted[o][1]:016x}", "text": text[:300]}
        out = []
        for rank, size in enumerate(sizes):
            docs = [found[o] for o in sorted(o for o, (r, _) in wanted.items() if r == rank) if o in found]
            out.append({"size": size, "members": docs})
        return out

    def _final_part(self, spec: ShardSpec, drop_orders: set[int] | None) -> int:
        marker = self.work / "final" / f"{spec.index:05d}.done"
        fmt = self.config.output_format
        part = self.out / "data" / f"part-{spec.index:05d}.{fmt}"
        if marker.exists():
            return int(marker.read_text() or 0)
        table = sio.read_parquet(self.work / "shards" / f"{spec.index:05d}.parquet")
        if drop_orders:
            orders = table.column(ORDER).to_pylist()
            table = sio.take_rows(table, [row for row, o in enumerate(orders) if o not in drop_orders])
        table = strip_internal(table)
        if table.num_rows:
            sio.write_table_atomic(part, table, fmt)
        sio.write_bytes_atomic(marker, str(table.num_rows).encode())
        return table.num_rows

    def _write_samples(self, merged: RunStats) -> None:
        dropped_dir = self.out / "dropped"
        for label, op in merged.ops.items():
            if op.dropped_sample:
                sio.write_jsonl_atomic(dropped_dir / f"{label}.jsonl", op.dropped_sample)


def dedup_summary(*, fingerprints: int, unique: int, pairs: int, cluster_sizes: np.ndarray, dropped: int,
                  zero_docs: int, examples: list[dict], seconds: float) -> dict:
    """The dedup summary of stats.json; both executors build it here, so they agree field by field."""
    return {
        "fingerprints": int(fingerprints),
        "unique_fingerprints": int(unique),
        "near_duplicate_pairs": int(pairs),
        "clusters": int(len(cluster_sizes)),
        "documents_in_clusters": int(cluster_sizes.sum()),
        "duplicates_dropped": int(dropped),
        "largest_cluster": int(cluster_sizes.max()) if len(cluster_sizes) else 0,
        "cluster_sizes": _size_histogram(cluster_sizes),
        "zero_fingerprint_docs": int(zero_docs),
        "empty_fingerprint_docs": 0,  # set by the caller, from the shards' statistics
        "cluster_examples": examples,
        "seconds": seconds,
    }


def _npy_bytes(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _size_histogram(sizes: np.ndarray) -> dict:
    if len(sizes) == 0:
        return {}
    edges = [2, 3, 5, 10, 100, 1000, 10**4, 10**5, 10**9]
    out = {}
    for lo, hi in zip(edges[:-1], edges[1:]):
        n = int(((sizes >= lo) & (sizes < hi)).sum())
        if n:
            out[f"{lo}-{hi - 1}"] = n
    return out


# -- the shard task (runs in a worker process) ---------------------------------------------------------
_WORKER_CONFIG: RunConfig | None = None  # set by the parent before it forks its workers


def _process_shard_in_worker(spec: ShardSpec) -> dict:
    assert _WORKER_CONFIG is not None, "worker not initialised"
    return process_shard(_WORKER_CONFIG, spec)

def process_shard(config: RunConfig, spec: ShardSpec) -> dict:
    """Read, clean, filter and fingerprint one shard; write its outputs, then its marker."""
    recipe = config.recipe
    work = Path(config.outdir) / "_work" / "shards"
    t0 = time.process_time()
    read = read_shard(spec.source, spec.start, spec.stop, config.mapping, spec.offset)
    stats = RunStats(ops=new_op_stats(recipe), input_records=read.records, shards=1)
    stats.read_seconds = time.process_time() - t0
    quarantine = [q.to_json() for q in read.quarantined]
    table = read.table
    pieces = []
    for offset in range(0, table.num_rows, config.batch_size):
        batch = table.slice(offset, config.batch_size)
        result = run_batch(recipe, batch, stats)
        quarantine.extend(result.quarantined)
        pieces.append(result.table)
    kept = pa.concat_tables(pieces) if pieces else table
    # global input order of each surviving row (row index within the shard is its position in the source)
    row_in_shard = [int(i.rsplit("#", 1)[1]) - spec.start for i in kept.column("id").to_pylist()]
    kept = kept.append_column(ORDER, pa.array([order_of(spec.index, r) for r in row_in_shard], pa.int64()))
    dedup = recipe.dedup
    if dedup is not None:
        label = recipe.op_labels()[-1]
        book = stats.ops[label]
        dedup.ensure_ready()
        c0 = time.process_time()
        texts = kept.column(recipe.text_key).to_pylist()
        fps, empty = [], 0
        for text in texts:
            fp, has = dedup.fingerprint_and_shingled(text)
            fps.append(fp)
            empty += not has
        book.seconds += time.process_time() - c0
        book.docs_in += len(texts)
        book.extra["empty_fingerprints"] = empty
        kept = kept.append_column(SIMHASH, pa.array(np.array(fps, dtype=np.uint64)))
    stats.quarantined = len(quarantine)
    stats.output_docs = kept.num_rows
    sio.write_table_atomic(work / f"{spec.index:05d}.parquet", kept)
    qdir = Path(config.outdir) / "quarantine"
    qpath = qdir / f"{spec.index:05d}.jsonl"
    if quarantine:
        sio.write_jsonl_atomic(qpath, quarantine)
    elif qpath.exists():
        qpath.unlink()
    shard_stats = stats.to_json(with_sketch=True)
    shard_stats["index"] = spec.index
    shard_stats["records"] = spec.stop - spec.start
    sio.write_json_atomic(work / f"{spec.index:05d}.stats.json", shard_stats)
    sio.write_bytes_atomic(work / f"{spec.index:05d}.done", b"")
    return shard_stats


def read_output(outdir: Path, columns: list[str] | None = None) -> pa.Table:
    """A finished run's cleaned documents (OUTDIR/data/part-NNNNN.parquet), in input order: parts are
    numbered by shard and rows keep their order within a shard."""
    parts = sorted((Path(outdir) / "data").glob("part-*.parquet"))
    if not parts:
        return pa.table({})
    return pa.concat_tables([sio.read_parquet(p, columns) for p in parts], promote_options="permissive")


def reset_outdir(outdir: Path) -> None:
    """Remove a previous run's outputs (for --overwrite)."""
    for name in ("data", "dropped", "quarantine", "_work", "stats.json"):
        p = Path(outdir) / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
