"""Distributed, exact SimHash dedup: the pairs, components and survivors of `steel_data.dedup`, computed
by tasks none of which holds all fingerprints.

Every arrow below is a shuffle into P partitions by a hash of the key it names; every stage is a set of
independent tasks over pieces of the previous one (`Engine` runs them: in this process, or on Ray).

  A  per shard      the shard's (order, fingerprint) -> its distinct values, each with the first order
                    and the count of its documents; later documents of a value are dropped   --value-->
  B  per partition  each value's first order over all shards (the value's *node*: a global input
                    order, unique per value); the others are dropped. Every value is sent once per
                    block table, keyed by (table, value & mask)                   --(table, masked key)-->
  C  per partition  values with equal masked keys are candidates, verified by popcount (as in the
                    reference); a pair is counted by the first table that finds it, so once. The local
                    components of the verified pairs become star edges (node -> smallest node) --node-->
  D  rounds         large-star / small-star (Kiveris et al., "Connected Components in MapReduce and
                    Beyond", 2014) until every component is a star around its smallest node   --node-->
  E  per partition  a node with a smaller neighbour is not its component's first: its document is
                    dropped; each node's document count goes to its root                      --root-->
  F  per partition  component sizes (documents)

Survivors: a node is a value's first input order, so the smallest node of a component is the first
document, in input order, of all documents of all its values: Data-Juicer's rule, as in the reference.

Skew: documents with equal fingerprints (100,000 empty Chinese documents all hashing to 0) collapse to
one row per shard in A and to one value in B, so no task sees them one by one after their shard. A
heavy masked key, or a giant component, lands on one partition, holding its distinct values (or its
star's edges), not the whole set.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from steel_data.dedup import block_masks, connected_components, popcount

_EMPTY_U64 = np.empty(0, np.uint64)
_EMPTY_I64 = np.empty(0, np.int64)


# -- partitioning ---------------------------------------------------------------------------------------
def mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a well-spread 64-bit hash of each element (wrapping arithmetic)."""
    x = np.asarray(x).astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


def partition_of(keys: np.ndarray, parts: int, salt: int = 0) -> np.ndarray:
    if parts == 1:
        return np.zeros(len(keys), np.uint16)
    keys = np.asarray(keys).astype(np.uint64)
    if salt:
        keys = keys ^ mix64(np.uint64(salt))
    # 16-bit partition ids sort by radix (`split` sorts them)
    return (mix64(keys) % np.uint64(parts)).astype(np.uint16 if parts <= 1 << 16 else np.intp)


def split(part: np.ndarray, parts: int, *arrays: np.ndarray) -> list[tuple[np.ndarray, ...]]:
    """Rows of `arrays` grouped by their partition: one tuple of arrays per partition."""
    if parts == 1:
        return [tuple(arrays)]
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(parts + 1))
    sorted_arrays = [a[order] for a in arrays]
    return [tuple(a[bounds[i]:bounds[i + 1]] for a in sorted_arrays) for i in range(parts)]


def _concat(pieces: Sequence[tuple[np.ndarray, ...]], width: int, dtypes: Sequence[Any]) -> list[np.ndarray]:
    if not pieces:
        return [np.empty(0, d) for d in dtypes]
    return [np.concatenate([p[i] for p in pieces]).astype(dtypes[i], copy=False) for i in range(width)]


def _first_per_group(keys: np.ndarray) -> np.ndarray:
    """For sorted keys: a mask of the first row of each run of equal keys."""
    first = np.ones(len(keys), dtype=bool)
    if len(keys) > 1:
        first[1:] = keys[1:] != keys[:-1]
    return first


def _read_source(source: Any) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(source, str) or hasattr(source, "__fspath__"):
        from steel_data import io as sio
        from steel_data.schema import ORDER, SIMHASH

        table = sio.read_parquet(source, columns=[ORDER, SIMHASH])
        return (table.column(ORDER).to_numpy().astype(np.int64, copy=False),
                table.column(SIMHASH).to_numpy().astype(np.uint64, copy=False))
    return np.asarray(source[0], np.int64), np.asarray(source[1], np.uint64)


def _peak_rss_mb() -> float:
    """The peak resident memory of the process running the task (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


# -- A: per shard -----------------------------------------------------------------------------------------
def shard_values(source: Any, parts: int) -> tuple:
    """Stage A. `source`: a shard's Parquet file (with the `_order` and `_simhash` columns) or an
    `(orders, fingerprints)` pair. Returns `parts` pieces `(values, first_orders, counts)`, then the
    orders dropped here (not the first of their value within the shard), then an info dict."""
    t0 = time.process_time()
    orders, fps = _read_source(source)
    sort = np.lexsort((orders, fps))
    fps, orders = fps[sort], orders[sort]
    first = _first_per_group(fps)
    starts = np.flatnonzero(first)
    counts = np.diff(np.append(starts, len(fps))).astype(np.int64)
    values, firsts = fps[first], orders[first]
    pieces = split(partition_of(values, parts), parts, values, firsts, counts)
    info = {"stage": "A", "rows": int(len(fps)), "docs": int(len(fps)), "zero_docs": int((fps == 0).sum()),
            "cpu": time.process_time() - t0, "peak_rss_mb": _peak_rss_mb()}
    return (*pieces, orders[~first], info)


# -- B: per value partition -------------------------------------------------------------------------------
def reduce_values(parts: int, masks: Sequence[int], *pieces: tuple) -> tuple:
    """Stage B. Pieces `(values, first_orders, counts)` of one value partition from every shard.
    Returns `parts` candidate pieces keyed by (table, value & mask), `parts` node pieces
    `(nodes, counts, values)` keyed by node, the orders dropped here, and an info dict. A candidate
    piece is `(bounds, values, nodes)`, its rows grouped by block table: table t's are
    `bounds[t]:bounds[t + 1]`."""
    t0 = time.process_time()
    values, firsts, counts = _concat(pieces, 3, (np.uint64, np.int64, np.int64))
    rows = len(values)
    sort = np.lexsort((firsts, values))
    values, firsts, counts = values[sort], firsts[sort], counts[sort]
    first = _first_per_group(values)
    starts = np.flatnonzero(first)
    total = np.add.reduceat(counts, starts) if len(values) else _EMPTY_I64
    dropped = firsts[~first]  # the first of its value in its shard, but not over all shards
    values, nodes = values[first], firsts[first]
    per_table = []  # per table: its rows sorted by destination, and the rows per destination
    for t, mask in enumerate(masks):
        if parts == 1:
            per_table.append((values, nodes, np.array([len(values)])))
            continue
        dest = partition_of(values & np.uint64(mask), parts, salt=t + 1)
        order = np.argsort(dest, kind="stable")
        per_table.append((values[order], nodes[order], np.bincount(dest, minlength=parts)))
    cand = []
    offsets = [0] * len(masks)
    for q in range(parts):
        vs, ns, bounds = [], [], [0]
        for t, (tv, tn, tc) in enumerate(per_table):
            lo, hi = offsets[t], offsets[t] + int(tc[q])
            vs.append(tv[lo:hi])
            ns.append(tn[lo:hi])
            bounds.append(bounds[-1] + hi - lo)
            offsets[t] = hi
        cand.append((np.array(bounds, np.int64),
                     np.concatenate(vs) if vs else _EMPTY_U64, np.concatenate(ns) if ns else _EMPTY_I64))
    del per_table
    node_pieces = split(partition_of(nodes, parts), parts, nodes, total, values)
    info = {"stage": "B", "rows": rows, "unique": int(len(values)), "cpu": time.process_time() - t0,
            "peak_rss_mb": _peak_rss_mb()}
    return (*cand, *node_pieces, dropped, info)


# -- C: candidate pairs per (table, masked key) partition -------------------------------------------------
def group_pairs(values: np.ndarray, mask: int, hamming_distance: int) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (a, b) of `values` with equal `values & mask` and at most `hamming_distance` differing
    bits: sort by key, compare each value with its k-th right neighbour while the key still matches (as the
    reference `near_duplicate_pairs` does for one table)."""
    n = len(values)
    keys = values & np.uint64(mask)
    order = np.argsort(keys, kind="stable")  # measured faster than the default quicksort here
    sk = keys[order]
    active = np.nonzero(sk[1:] == sk[:-1])[0]
    out_a, out_b = [], []
    k = 1
    while active.size:
        a, b = order[active], order[active + k]
        close = popcount(values[a] ^ values[b]) <= hamming_distance
        if close.any():
            out_a.append(a[close])
            out_b.append(b[close])
        k += 1
        active = active[active + k < n]
        active = active[sk[active + k] == sk[active]]
    if not out_a:
        return _EMPTY_I64, _EMPTY_I64
    return np.concatenate(out_a).astype(np.int64), np.concatenate(out_b).astype(np.int64)


def candidate_pairs(parts: int, masks: Sequence[int], hamming_distance: int, collect: bool, *pieces: tuple) -> tuple:
    """Stage C. Candidate pieces of one (table, masked key) partition (see `reduce_values`). Returns
    `parts` edge pieces `(src, dst)` keyed by src (both directions of each star edge of the local
    components), the pairs counted here as `(value_lo, value_hi)` when `collect` (else empty), and an
    info dict."""
    t0 = time.process_time()
    mask_arr = np.array([np.uint64(m) for m in masks], dtype=np.uint64)
    edge_a, edge_b, lo_vals, hi_vals = [], [], [], []
    counted = 0
    rows = sum(len(pc[1]) for pc in pieces)
    for t in range(len(masks)):
        v = np.concatenate([pc[1][pc[0][t]:pc[0][t + 1]] for pc in pieces]) if pieces else _EMPTY_U64
        if len(v) < 2:
            continue
        nd = np.concatenate([pc[2][pc[0][t]:pc[0][t + 1]] for pc in pieces])
        a, b = group_pairs(v, int(masks[t]), hamming_distance)
        if not len(a):
            continue
        diff = v[a] ^ v[b]
        # a pair belongs to the first table whose key it agrees on: it is counted there only
        mine = np.ones(len(a), dtype=bool)
        for earlier in mask_arr[:t]:
            mine &= (diff & earlier) != 0
        a, b = a[mine], b[mine]
        counted += len(a)
        if collect:
            lo_vals.append(np.minimum(v[a], v[b]))
            hi_vals.append(np.maximum(v[a], v[b]))
        edge_a.append(nd[a])
        edge_b.append(nd[b])
    src, dst = _star_edges(np.concatenate(edge_a) if edge_a else _EMPTY_I64,
                           np.concatenate(edge_b) if edge_b else _EMPTY_I64)
    out = _route_edges(src, dst, parts)
    pairs = (np.concatenate(lo_vals), np.concatenate(hi_vals)) if lo_vals else (_EMPTY_U64, _EMPTY_U64)
    info = {"stage": "C", "rows": rows, "pairs": counted, "cpu": time.process_time() - t0,
            "peak_rss_mb": _peak_rss_mb()}
    return (*out, pairs, info)


def _star_edges(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Replace the edges by the stars of their components (node -> smallest node): same connectivity,
    at most one edge per node."""
    if not len(a):
        return _EMPTY_I64, _EMPTY_I64
    ids, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
    pairs = inverse.reshape(2, -1).T
    labels = connected_components(len(ids), pairs)  # the smallest member index = the smallest node
    leaf = labels != np.arange(len(ids))
    return ids[leaf], ids[labels[leaf]]


def _route_edges(hi: np.ndarray, lo: np.ndarray, parts: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Both directions of each undirected edge, keyed by the source node."""
    src = np.concatenate([hi, lo])
    dst = np.concatenate([lo, hi])
    return split(partition_of(src, parts), parts, src, dst)


# -- D: large-star / small-star rounds --------------------------------------------------------------------
def star_round(kind: str, parts: int, *pieces: tuple) -> tuple:
    """Stage D, one round over one node partition. Pieces `(src, dst)`: every edge at each of this
    partition's nodes, from that node's side. Returns the next round's `parts` pieces and an info dict
    whose `converged` says the *input* already was a forest of stars around each component's smallest
    node (no node has two smaller neighbours, none has both a smaller and a larger one)."""
    t0 = time.process_time()
    src, dst = _concat(pieces, 2, (np.int64, np.int64))
    if len(src):  # sorted by (src, dst), without repeats
        sort = np.lexsort((dst, src))
        src, dst = src[sort], dst[sort]
        keep = np.ones(len(src), dtype=bool)
        keep[1:] = (src[1:] != src[:-1]) | (dst[1:] != dst[:-1])
        src, dst = src[keep], dst[keep]
    first = _first_per_group(src)
    group = np.cumsum(first) - 1
    nodes = src[first]
    smaller = dst < src
    n_smaller = np.bincount(group, weights=smaller, minlength=len(nodes)) if len(src) else _EMPTY_I64
    n_larger = np.bincount(group, weights=~smaller, minlength=len(nodes)) if len(src) else _EMPTY_I64
    converged = bool(not ((n_smaller >= 2) | ((n_smaller >= 1) & (n_larger >= 1))).any())
    # dst is sorted within each group: the group's first dst is its smallest neighbour
    min_nb = dst[first][group] if len(src) else _EMPTY_I64
    m = np.minimum(src, min_nb)  # smallest of the node's closed neighbourhood, per row
    if kind == "large":
        # every larger neighbour v of u is linked to m(u)
        sel = dst > src
        hi, lo = dst[sel], m[sel]
    elif kind == "small":
        # u and its smaller neighbours are all linked to the smallest of them
        sel = smaller & (dst != m)
        has_smaller = (n_smaller >= 1)[group] if len(src) else np.zeros(0, bool)
        own = first & has_smaller
        hi = np.concatenate([dst[sel], src[own]])
        lo = np.concatenate([m[sel], m[own]])
    else:
        raise ValueError(f"unknown round {kind!r}")
    out = _route_edges(hi, lo, parts)
    return (*out, {"stage": "D", "rows": int(len(src)), "converged": converged, "cpu": time.process_time() - t0,
                   "peak_rss_mb": _peak_rss_mb()})


# -- E, F: roots, drops, component sizes; G: example members ------------------------------------------
def _top(sizes: np.ndarray, min_values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest clusters; ties go to the smaller least value (the reference's order)."""
    if not len(sizes) or k <= 0:
        return _EMPTY_I64
    return np.lexsort((min_values, -sizes))[:k]


def resolve_roots(parts: int, top: int, n_node_pieces: int, *pieces: tuple) -> tuple:
    """Stage E over one node partition. The first `n_node_pieces` pieces are `(nodes, counts, values)`,
    the rest the converged star edges `(src, dst)` at this partition's nodes. Returns `parts` pieces
    `(root, count, value)` keyed by root (nodes in a component with other values), the dropped orders
    (nodes that are not their component's root), the sizes of single-value clusters (a value several
    documents share), the `top` largest of those as example candidates, and an info dict."""
    t0 = time.process_time()
    nodes, counts, values = _concat(pieces[:n_node_pieces], 3, (np.int64, np.int64, np.uint64))
    src, dst = _concat(pieces[n_node_pieces:], 2, (np.int64, np.int64))
    smaller = dst < src
    child, parent = src[smaller], dst[smaller]  # in a star forest a node has at most one smaller neighbour
    in_edges = np.isin(nodes, src)
    # the root of a node: its smaller neighbour if it has one, else itself
    sort = np.argsort(child)
    child, parent = child[sort], parent[sort]
    pos = np.searchsorted(child, nodes)
    pos_ok = pos < len(child)
    has_parent = np.zeros(len(nodes), bool)
    has_parent[pos_ok] = child[pos[pos_ok]] == nodes[pos_ok]
    root = nodes.copy()
    root[has_parent] = parent[pos[has_parent]]
    dropped = nodes[has_parent]
    alone = ~in_edges & (counts > 1)
    single_sizes, single_values = counts[alone], values[alone]
    best = _top(single_sizes, single_values, top)
    examples = [(int(single_sizes[i]), int(single_values[i]), np.array([single_values[i]], np.uint64)) for i in best]
    out = split(partition_of(root[in_edges], parts), parts, root[in_edges], counts[in_edges], values[in_edges])
    return (*out, dropped, single_sizes, examples, {"cpu": time.process_time() - t0, "peak_rss_mb": _peak_rss_mb()})


def component_sizes(top: int, *pieces: tuple) -> tuple:
    """Stage F: documents per component (summed per root), and the `top` largest components as example
    candidates `(size, least value, values)`."""
    t0 = time.process_time()
    roots, counts, values = _concat(pieces, 3, (np.int64, np.int64, np.uint64))
    if not len(roots):
        return _EMPTY_I64, [], {"cpu": time.process_time() - t0, "peak_rss_mb": _peak_rss_mb()}
    sort = np.lexsort((values, roots))
    roots, counts, values = roots[sort], counts[sort], values[sort]
    starts = np.flatnonzero(_first_per_group(roots))
    sizes = np.add.reduceat(counts, starts)
    least = values[starts]  # values are sorted within each root
    ends = np.append(starts[1:], len(roots))
    examples = [(int(sizes[i]), int(least[i]), values[starts[i]:ends[i]].copy()) for i in _top(sizes, least, top)]
    return sizes, examples, {"cpu": time.process_time() - t0, "peak_rss_mb": _peak_rss_mb()}


def cluster_members(source: Any, clusters: Sequence[np.ndarray], members: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stage G, per shard: for each example cluster (given by its values), the first `members` documents
    of the shard in it, as `(orders, fingerprints)`."""
    orders, fps = _read_source(source)
    sort = np.argsort(orders, kind="stable")
    orders, fps = orders[sort], fps[sort]
    out = []
    for values in clusters:
        hit = np.flatnonzero(np.isin(fps, values))[:members]
        out.append((orders[hit], fps[hit]))
    return out


# -- running the stages ------------------------------------------------------------------------------------
class SerialEngine:
    """Runs every task in this process, in order: the engine of tests and one-core benchmarks."""

    def submit(self, fn: Callable, *args: Any, num_returns: int = 1) -> list:
        out = fn(*args)
        return list(out) if num_returns > 1 else [out]

    def get(self, handles: list) -> list:
        return list(handles)


@dataclass
class DistributedDedup:
    drop_orders: np.ndarray  # sorted input orders of the documents to drop
    fingerprints: int
    unique_values: int
    pairs: int
    cluster_sizes: np.ndarray  # documents per cluster (components with more than one document), sorted
    zero_docs: int
    cpu_seconds: float
    rounds: int
    partitions: int
    # the largest clusters, as the reference orders them: (size, [(order, fingerprint) of the first members])
    examples: list[tuple[int, list[tuple[int, int]]]] = field(default_factory=list)
    pair_values: tuple[np.ndarray, np.ndarray] | None = None  # (lo, hi) values of every pair, if collected
    stage_seconds: dict[str, float] = field(default_factory=dict)
    max_task_rows: dict[str, int] = field(default_factory=dict)  # per stage: the most rows one task held
    peak_task_rss_mb: float = 0.0  # the largest peak RSS of a process that ran a task


def default_partitions(fingerprints: int, workers: int, num_blocks: int = 6, hamming_distance: int = 4,
                       rows_per_partition: int = 4_000_000) -> int:
    """Enough partitions that a candidate task holds about `rows_per_partition` rows (each distinct value
    is sent once per block table), and at least two per worker."""
    from math import comb

    tables = comb(num_blocks, num_blocks - hamming_distance)
    return max(2 * max(workers, 1), -(-fingerprints * tables // rows_per_partition), 1)


def deduplicate_distributed(sources: Sequence[Any], num_blocks: int, hamming_distance: int, *,
                            engine: Any = None, parts: int = 4, collect_pairs: bool = False,
                            examples: int = 0, members: int = 5, max_rounds: int = 200) -> DistributedDedup:
    """Run stages A-G over `sources` (shard Parquet files, or `(orders, fingerprints)` pairs).
    Documents are identified by their global input order; the result equals the reference
    `steel_data.dedup.deduplicate` over all fingerprints in input order. `examples`: how many of the
    largest clusters to describe by their first `members` documents."""
    engine = engine or SerialEngine()
    masks = [int(m) for m in block_masks(num_blocks, hamming_distance)]
    P = max(int(parts), 1)
    wall: dict[str, float] = {}
    t = time.perf_counter()
    # only handles still needed are kept: a stage's outputs are freed once its consumers have run
    drops: list[Any] = []
    a_infos, pieces_by_part = [], [[] for _ in range(P)]
    for src in sources:
        o = engine.submit(shard_values, src, P, num_returns=P + 2)
        for p in range(P):
            pieces_by_part[p].append(o[p])
        drops.append(o[P])
        a_infos.append(o[P + 1])
    b_infos, cand_by_part, nodes_by_part = [], [[] for _ in range(P)], [[] for _ in range(P)]
    for p in range(P):
        o = engine.submit(reduce_values, P, masks, *pieces_by_part[p], num_returns=2 * P + 2)
        for q in range(P):
            cand_by_part[q].append(o[q])
            nodes_by_part[q].append(o[P + q])
        drops.append(o[2 * P])
        b_infos.append(o[2 * P + 1])
    del pieces_by_part
    c_infos, pair_handles, edges = [], [], [[] for _ in range(P)]
    for q in range(P):
        o = engine.submit(candidate_pairs, P, masks, hamming_distance, collect_pairs, *cand_by_part[q],
                          num_returns=P + 2)
        for r in range(P):
            edges[r].append(o[r])
        if collect_pairs:
            pair_handles.append(o[P])
        c_infos.append(o[P + 1])
    del cand_by_part, o
    a_info, b_info, c_info = engine.get(a_infos), engine.get(b_infos), engine.get(c_infos)
    infos = a_info + b_info + c_info
    wall["A-C"] = time.perf_counter() - t

    t = time.perf_counter()
    rounds, kind = 0, "large"  # edges[q]: the edge pieces at node partition q
    while True:
        if rounds >= max_rounds:
            raise RuntimeError(f"connected components did not converge in {max_rounds} rounds")
        d_out = [engine.submit(star_round, kind, P, *edges[q], num_returns=P + 1) for q in range(P)]
        d_info = engine.get([o[P] for o in d_out])
        infos += d_info
        rounds += 1
        if all(i["converged"] for i in d_info):
            break  # this round's input is the final forest of stars
        edges = [[o[q] for o in d_out] for q in range(P)]
        kind = "small" if kind == "large" else "large"
    del d_out
    wall["D"] = time.perf_counter() - t

    t = time.perf_counter()
    e_out = [engine.submit(resolve_roots, P, examples, len(nodes_by_part[q]), *nodes_by_part[q], *edges[q],
                           num_returns=P + 4) for q in range(P)]
    del nodes_by_part, edges
    f_out = [engine.submit(component_sizes, examples, *[o[r] for o in e_out], num_returns=3) for r in range(P)]
    drops += [o[P] for o in e_out]
    groups = {"drops": drops, "singles": [o[P + 1] for o in e_out], "sizes": [o[0] for o in f_out],
              "examples": [o[P + 2] for o in e_out] + [o[1] for o in f_out],
              "infos": [o[P + 3] for o in e_out] + [o[2] for o in f_out], "pairs": pair_handles}
    del e_out, f_out
    flat = engine.get([h for g in groups.values() for h in g])
    got, i = {}, 0
    for name, handles in groups.items():
        got[name], i = flat[i:i + len(handles)], i + len(handles)
    del flat
    infos += got["infos"]
    wall["E-F"] = time.perf_counter() - t

    described: list[tuple[int, list[tuple[int, int]]]] = []
    candidates = [c for cs in got["examples"] for c in cs]
    if candidates:
        t = time.perf_counter()
        candidates.sort(key=lambda c: (-c[0], c[1]))
        chosen = candidates[:examples]
        value_sets = [c[2] for c in chosen]
        found = engine.get([engine.submit(cluster_members, src, value_sets, members)[0] for src in sources])
        for rank, c in enumerate(chosen):
            orders = np.concatenate([f[rank][0] for f in found]) if found else _EMPTY_I64
            fps = np.concatenate([f[rank][1] for f in found]) if found else _EMPTY_U64
            first = np.argsort(orders, kind="stable")[:members]
            described.append((c[0], [(int(orders[j]), int(fps[j])) for j in first]))
        wall["G"] = time.perf_counter() - t

    pair_values = None
    if collect_pairs:
        pairs = got["pairs"]
        pair_values = (np.concatenate([g[0] for g in pairs]) if pairs else _EMPTY_U64,
                       np.concatenate([g[1] for g in pairs]) if pairs else _EMPTY_U64)
    drop_orders = np.sort(np.concatenate(got["drops"])) if got["drops"] else _EMPTY_I64
    sizes = np.concatenate(got["singles"] + got["sizes"]) if (got["singles"] or got["sizes"]) else _EMPTY_I64
    return DistributedDedup(
        drop_orders=drop_orders.astype(np.int64),
        fingerprints=sum(i["docs"] for i in a_info),
        unique_values=sum(i["unique"] for i in b_info),
        pairs=sum(i["pairs"] for i in c_info),
        cluster_sizes=np.sort(sizes.astype(np.int64)),
        zero_docs=sum(i["zero_docs"] for i in a_info),
        cpu_seconds=sum(i["cpu"] for i in infos),
        rounds=rounds,
        partitions=P,
        examples=described,
        pair_values=pair_values,
        stage_seconds=wall,
        max_task_rows={st: max((i["rows"] for i in infos if i.get("stage") == st), default=0)
                       for st in "ABCD"},
        peak_task_rss_mb=max((i.get("peak_rss_mb", 0.0) for i in infos), default=0.0),
    )
