"""Distributed, exact SimHash dedup: the pairs, components and survivors of `steel_data.dedup`, computed
by tasks none of which holds all fingerprints.

Every arrow below is a shuffle into P partitions by a hash of the key it names; every stage is a set of
independent tasks over pieces of the previous one. An engine runs them: `SerialEngine` (one after another,
in this process), `ThreadEngine` (on a pool of threads) or `RayEngine` (`steel_data.ray_executor`).

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

Speed: the sorts are radix sorts over 16-bit digits (`radix_order`: of the packed block-key bits in C,
of node ids in D and E), about 3x faster than numpy's argsort of 64-bit keys; star rounds group edges by
source only. On two cores, two tasks of sorts, gathers and popcounts each run at nearly full speed side by
side; only streaming passes over arrays far larger than the caches share the memory bandwidth
(`bench/dedup.py --probe`).

Skew: documents with equal fingerprints (100,000 empty Chinese documents all hashing to 0) collapse to
one row per shard in A and to one value in B, so no task sees them one by one after their shard. A
heavy masked key, or a giant component, lands on one partition, holding its distinct values (or its
star's edges), not the whole set.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from steel_data.dedup import block_masks, popcount

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
    # the top 32 bits of the hash scaled to [0, parts): a multiply, not a division. 16-bit partition ids
    # sort by radix (`split` sorts them)
    h = mix64(keys) >> np.uint64(32)
    h *= np.uint64(parts)
    h >>= np.uint64(32)
    return h.astype(np.uint16 if parts <= 1 << 16 else np.intp)


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


# -- sorting by integer keys ---------------------------------------------------------------------------------
def radix_order(keys: np.ndarray, bits: int) -> np.ndarray:
    """A stable argsort of unsigned integer keys below `2**bits`: least significant digit first, each digit
    of at most 16 bits ordered by numpy's stable sort, which is a counting (radix) sort for 16-bit integers.
    Measured on 22-bit keys: 1,000,000 in 22 ms against `np.argsort`'s 74 ms; 250,000 in 3.2 ms against
    15 ms (each pass's gathers stay in cache)."""
    n = len(keys)
    if n < 2 or bits <= 0:
        return np.arange(n)
    passes = -(-bits // 16)
    width = -(-bits // passes)
    digit_mask = np.uint64((1 << width) - 1)
    digits = [((keys >> np.uint64(p * width)) & digit_mask).astype(np.uint16) for p in range(passes)]
    order = np.argsort(digits[0], kind="stable")
    for d in digits[1:]:
        order = order[np.argsort(d[order], kind="stable")]
    return order


def _offset_keys(x: np.ndarray) -> tuple[np.ndarray, int]:
    """int64 ids as unsigned keys counted from the least (same order), and the keys' bit length."""
    if not len(x):
        return np.empty(0, np.uint64), 0
    keys = x.astype(np.uint64) ^ np.uint64(1 << 63)  # order-preserving for negative ids too
    keys -= keys.min()
    return keys, int(keys.max()).bit_length()


def sorted_order(x: np.ndarray) -> np.ndarray:
    """A stable ascending order of int64 ids by `radix_order` (ids within a small range take fewer passes)."""
    keys, bits = _offset_keys(x)
    return radix_order(keys, bits)


def _components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected components of nodes `0..n-1` with edges `(a, b)`: for each node its component's smallest
    member. Hook and compress: each edge between two trees hooks the larger root under the smaller, then
    every node jumps to its root; edges inside one tree drop out, so each pass works on fewer edges."""
    labels = np.arange(n)
    while len(a):
        la, lb = labels[a], labels[b]
        live = la != lb
        if not live.any():
            break
        a, b, la, lb = a[live], b[live], la[live], lb[live]
        np.minimum.at(labels, np.maximum(la, lb), np.minimum(la, lb))
        while True:  # labels[x] <= x throughout, so this ends with every node on its root
            jumped = labels[labels]
            if np.array_equal(jumped, labels):
                break
            labels = jumped
    return labels


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
    `(orders, fingerprints)` pair. Returns a tuple of `parts` pieces `(values, first_orders, counts)`, the
    orders dropped here (not the first of their value within the shard), then an info dict."""
    _keep_freed_memory()
    t0 = time.thread_time()
    orders, fps = _read_source(source)
    sort = np.lexsort((orders, fps))
    fps, orders = fps[sort], orders[sort]
    first = _first_per_group(fps)
    starts = np.flatnonzero(first)
    counts = np.diff(np.append(starts, len(fps))).astype(np.int64)
    values, firsts = fps[first], orders[first]
    pieces = split(partition_of(values, parts), parts, values, firsts, counts)
    info = {"stage": "A", "rows": int(len(fps)), "docs": int(len(fps)), "zero_docs": int((fps == 0).sum()),
            "cpu": time.thread_time() - t0, "peak_rss_mb": _peak_rss_mb()}
    return tuple(pieces), orders[~first], info


# -- B: per value partition -------------------------------------------------------------------------------
def reduce_values(parts: int, masks: Sequence[int], *pieces: tuple) -> tuple:
    """Stage B. Pieces `(values, first_orders, counts)` of one value partition from every shard.
    Returns a tuple of `parts` candidate pieces keyed by (table, value & mask), a tuple of `parts` node
    pieces `(nodes, counts, values)` keyed by node, the orders dropped here, and an info dict. A candidate
    piece is `(bounds, values, nodes)`, its rows grouped by block table: table t's are
    `bounds[t]:bounds[t + 1]`; with one partition, `bounds` is None: every table has all the rows."""
    t0 = time.thread_time()
    values, firsts, counts = _concat(pieces, 3, (np.uint64, np.int64, np.int64))
    rows = len(values)
    # each shard's piece is sorted by value (stage A): a stable sort merges the runs (timsort finds them)
    sort = np.argsort(values, kind="stable")
    values, firsts, counts = values[sort], firsts[sort], counts[sort]
    first = _first_per_group(values)
    starts = np.flatnonzero(first)
    if len(values):
        nodes = np.minimum.reduceat(firsts, starts)
        total = np.add.reduceat(counts, starts)
    else:
        nodes, total = _EMPTY_I64, _EMPTY_I64
    dropped = firsts[firsts != nodes[np.cumsum(first) - 1]]  # first in its shard, not over all shards
    values = values[first]
    if parts == 1:
        info = {"stage": "B", "rows": rows, "unique": int(len(values)), "cpu": time.thread_time() - t0,
                "peak_rss_mb": _peak_rss_mb()}
        return ((None, values, nodes),), ((nodes, total, values),), dropped, info
    per_table = []  # per table: its rows sorted by destination, and the rows per destination
    for t, mask in enumerate(masks):
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
    info = {"stage": "B", "rows": rows, "unique": int(len(values)), "cpu": time.thread_time() - t0,
            "peak_rss_mb": _peak_rss_mb()}
    return tuple(cand), tuple(node_pieces), dropped, info


# -- C: candidate pairs per (table, masked key) partition -------------------------------------------------
def compact_key(values: np.ndarray, mask: int) -> tuple[np.ndarray, int]:
    """The bits of `values` under `mask`, packed together (same order within one mask), and how many."""
    keys = np.zeros(len(values), np.uint64)
    pos = bit = 0
    while bit < 64:
        if not (mask >> bit) & 1:
            bit += 1
            continue
        run = bit
        while run < 64 and (mask >> run) & 1:
            run += 1
        keys |= ((values >> np.uint64(bit)) & np.uint64((1 << (run - bit)) - 1)) << np.uint64(pos)
        pos += run - bit
        bit = run
    return keys, pos


def group_pairs(values: np.ndarray, mask: int, hamming_distance: int,
                earlier: Sequence[int] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (a, b) of `values` with equal `values & mask`, at most `hamming_distance` differing bits,
    and unequal keys under each of the `earlier` masks (so that a pair is counted by the first table whose
    key it agrees on, and only there). Order by key (a radix sort of the packed key bits), compare each
    value with its k-th right neighbour while the key still matches (as the reference
    `near_duplicate_pairs` does for one table): one xor tells all three."""
    n = len(values)
    keys, bits = compact_key(values, mask)
    order = radix_order(keys, bits)
    del keys
    vs = values[order]
    m = np.uint64(mask)
    earlier_masks = [np.uint64(e) for e in earlier]
    out_a, out_b = [], []
    x = vs[1:] ^ vs[:-1]
    active = np.flatnonzero((x & m) == 0)  # positions whose k-th right neighbour shares the key
    x = x[active]
    k = 1
    while active.size:
        found = popcount(x) <= hamming_distance
        for e in earlier_masks:
            found &= (x & e) != 0
        out_a.append(active[found])
        out_b.append(active[found] + k)
        k += 1
        active = active[active + k < n]
        x = vs[active] ^ vs[active + k]
        same = (x & m) == 0
        active, x = active[same], x[same]
    if not out_a:
        return _EMPTY_I64, _EMPTY_I64
    return order[np.concatenate(out_a)], order[np.concatenate(out_b)]


def _table_rows(piece: tuple, column: int, t: int) -> np.ndarray:
    bounds = piece[0]
    return piece[column] if bounds is None else piece[column][bounds[t]:bounds[t + 1]]


def candidate_pairs(parts: int, masks: Sequence[int], hamming_distance: int, collect: bool, *pieces: tuple) -> tuple:
    """Stage C. Candidate pieces of one (table, masked key) partition (see `reduce_values`). Returns a
    tuple of `parts` edge pieces `(src, dst)` keyed by src (both directions of each star edge of the local
    components), the pairs counted here as `(value_lo, value_hi)` when `collect` (else empty), and an
    info dict."""
    t0 = time.thread_time()
    edge_a, edge_b, lo_vals, hi_vals = [], [], [], []
    counted = 0
    rows = sum(len(pc[1]) * (len(masks) if pc[0] is None else 1) for pc in pieces)
    for t in range(len(masks)):
        v = np.concatenate([_table_rows(pc, 1, t) for pc in pieces]) if pieces else _EMPTY_U64
        if len(v) < 2:
            continue
        nd = np.concatenate([_table_rows(pc, 2, t) for pc in pieces])
        # a pair belongs to the first table whose key it agrees on: it is counted there only
        a, b = group_pairs(v, int(masks[t]), hamming_distance, masks[:t])
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
    info = {"stage": "C", "rows": rows, "pairs": counted, "cpu": time.thread_time() - t0,
            "peak_rss_mb": _peak_rss_mb()}
    return tuple(out), pairs, info


def _star_edges(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Replace the edges by the stars of their components (node -> smallest node): same connectivity,
    at most one edge per node."""
    if not len(a):
        return _EMPTY_I64, _EMPTY_I64
    ends = np.concatenate([a, b])
    order = sorted_order(ends)
    ends_sorted = ends[order]
    first = _first_per_group(ends_sorted)
    ids = ends_sorted[first]  # the distinct nodes, ascending
    inverse = np.empty(len(ends), np.int64)
    inverse[order] = np.cumsum(first) - 1
    labels = _components(len(ids), inverse[:len(a)], inverse[len(a):])  # the smallest member = smallest node
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
    partition's nodes, from that node's side. Returns a tuple of the next round's `parts` pieces and an info dict
    whose `converged` says the *input* already was a forest of stars around each component's smallest
    node (no node has two smaller neighbours, none has both a smaller and a larger one).

    Edges are a multiset: a repeated edge gives repeated output edges and changes nothing else (a node's
    smallest neighbour, and whether any neighbour differs from it, are all a round looks at), so rows are
    grouped by source only, never sorted by destination. A round emits at most one edge per edge it
    receives."""
    t0 = time.thread_time()
    src, dst = _concat(pieces, 2, (np.int64, np.int64))
    rows = len(src)
    if not rows:
        out = _route_edges(_EMPTY_I64, _EMPTY_I64, parts)
        return tuple(out), {"stage": "D", "rows": 0, "converged": True, "cpu": time.thread_time() - t0,
                            "peak_rss_mb": _peak_rss_mb()}
    order = sorted_order(src)
    src, dst = src[order], dst[order]
    first = _first_per_group(src)
    starts = np.flatnonzero(first)
    sizes = np.diff(np.append(starts, rows))
    nodes = src[starts]
    least = np.minimum.reduceat(dst, starts)  # each node's smallest neighbour
    has_smaller = least < nodes
    m_node = np.minimum(nodes, least)  # the smallest of each node's closed neighbourhood
    m = np.repeat(m_node, sizes)
    # a node with a smaller neighbour and any other neighbour (a second smaller one, or a larger one)
    converged = not (np.repeat(has_smaller, sizes) & (dst != m)).any()
    smaller = dst < src
    if kind == "large":
        # every larger neighbour v of u is linked to m(u)
        sel = dst > src
        hi, lo = dst[sel], m[sel]
    elif kind == "small":
        # u and its smaller neighbours are all linked to the smallest of them
        sel = smaller & (dst != m)
        hi = np.concatenate([dst[sel], nodes[has_smaller]])
        lo = np.concatenate([m[sel], m_node[has_smaller]])
    else:
        raise ValueError(f"unknown round {kind!r}")
    out = _route_edges(hi, lo, parts)
    return tuple(out), {"stage": "D", "rows": rows, "converged": bool(converged), "cpu": time.thread_time() - t0,
                        "peak_rss_mb": _peak_rss_mb()}


# -- E, F: roots, drops, component sizes; G: example members ------------------------------------------
def _top(sizes: np.ndarray, min_values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest clusters; ties go to the smaller least value (the reference's order)."""
    if not len(sizes) or k <= 0:
        return _EMPTY_I64
    return np.lexsort((min_values, -sizes))[:k]


def resolve_roots(parts: int, top: int, n_node_pieces: int, *pieces: tuple) -> tuple:
    """Stage E over one node partition. The first `n_node_pieces` pieces are `(nodes, counts, values)`,
    the rest the converged star edges `(src, dst)` at this partition's nodes. Returns a tuple of `parts` pieces
    `(root, count, value)` keyed by root (nodes in a component with other values), the dropped orders
    (nodes that are not their component's root), the sizes of single-value clusters (a value several
    documents share), the `top` largest of those as example candidates, and an info dict."""
    t0 = time.thread_time()
    nodes, counts, values = _concat(pieces[:n_node_pieces], 3, (np.int64, np.int64, np.uint64))
    src, dst = _concat(pieces[n_node_pieces:], 2, (np.int64, np.int64))
    # sort nodes and edges together by node (stably: a node's own row first, then its edges)
    ids = np.concatenate([nodes, src])
    order = sorted_order(ids)
    starts = np.flatnonzero(_first_per_group(ids[order]))
    node = order[starts]  # the node of each group
    if len(starts) != len(nodes) or (node >= len(nodes)).any():
        raise RuntimeError("an edge at a node of another partition")  # both are routed by partition_of
    in_edges = np.zeros(len(nodes), bool)
    in_edges[node] = np.diff(np.append(starts, len(ids))) > 1
    # the root of a node: its smaller neighbour if it has one (a star forest: at most one), else itself
    other_end = np.concatenate([nodes, dst])[order]  # a node's own row counts as the node itself
    root = nodes.copy()
    if len(starts):
        root[node] = np.minimum.reduceat(other_end, starts)
    has_parent = root != nodes
    dropped = nodes[has_parent]
    alone = ~in_edges & (counts > 1)
    single_sizes, single_values = counts[alone], values[alone]
    best = _top(single_sizes, single_values, top)
    examples = [(int(single_sizes[i]), int(single_values[i]), np.array([single_values[i]], np.uint64)) for i in best]
    out = split(partition_of(root[in_edges], parts), parts, root[in_edges], counts[in_edges], values[in_edges])
    return (tuple(out), dropped, single_sizes, examples,
            {"stage": "E", "cpu": time.thread_time() - t0, "peak_rss_mb": _peak_rss_mb()})


def component_sizes(top: int, *pieces: tuple) -> tuple:
    """Stage F: documents per component (summed per root), and the `top` largest components as example
    candidates `(size, least value, values)`."""
    t0 = time.thread_time()
    roots, counts, values = _concat(pieces, 3, (np.int64, np.int64, np.uint64))
    if not len(roots):
        return _EMPTY_I64, [], {"stage": "F", "cpu": time.thread_time() - t0, "peak_rss_mb": _peak_rss_mb()}
    sort = np.lexsort((values, roots))
    roots, counts, values = roots[sort], counts[sort], values[sort]
    starts = np.flatnonzero(_first_per_group(roots))
    sizes = np.add.reduceat(counts, starts)
    least = values[starts]  # values are sorted within each root
    ends = np.append(starts[1:], len(roots))
    examples = [(int(sizes[i]), int(least[i]), values[starts[i]:ends[i]].copy()) for i in _top(sizes, least, top)]
    return sizes, examples, {"stage": "F", "cpu": time.thread_time() - t0, "peak_rss_mb": _peak_rss_mb()}


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
_KEEPS_FREED_MEMORY: list[bool] = []


def _keep_freed_memory() -> None:
    """Let this process keep the memory a task frees for the next task's arrays, once per process (glibc:
    arrays under 32 MiB come from the heap, and the heap is trimmed only past 1 GiB free; either setting
    alone turns off glibc's own adjustment and makes things worse). Otherwise a Ray worker hands a task's
    temporaries back to the system and faults them in again in the next task: at 10^6 fingerprints on 4
    partitions, measured, 300,000 page faults and 0.55 s of system time in 2.3 s of tasks; with this,
    1,500 to 24,000 faults and 0.05 s.
    The process keeps at most its largest task's arrays, which the task needed anyway; an explicit
    `malloc_trim` (the Ray executor's, over its memory budget) still hands them back."""
    if _KEEPS_FREED_MEMORY:
        return
    _KEEPS_FREED_MEMORY.append(True)
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc
        pass


def _pick(fn: Callable, q: int, fixed: tuple, *outputs: Sequence) -> Any:
    """`fn(*fixed, *pieces)` with piece `q` of each of `outputs`. A task hands the next stage one object
    holding a piece per partition, not a return value per piece: on Ray that is P times fewer objects to
    create, track and free (each costs the raylet and the object store some CPU; a 2-CPU machine has none
    to spare). Each consumer maps every producer's object (zero-copy) and reads its own piece."""
    _keep_freed_memory()
    return fn(*fixed, *(o[q] for o in outputs))


class SerialEngine:
    """Runs every task in this process, in order: the engine of tests and one-core benchmarks."""

    def submit(self, fn: Callable, *args: Any, num_returns: int = 1) -> list:
        out = fn(*args)
        return list(out) if num_returns > 1 else [out]

    def get(self, handles: list) -> list:
        return list(handles)


@dataclass(frozen=True)
class _Result:
    future: Future
    index: int | None  # which of the task's return values; None: the only one

    def value(self) -> Any:
        out = self.future.result()
        return out if self.index is None else out[self.index]


class ThreadEngine:
    """Runs tasks on `workers` threads of this process. A task spends nearly all its time in numpy sorts,
    gathers and element-wise loops, which release the GIL, so tasks run side by side; outputs are shared,
    never copied. A task's arguments are waited for when it is submitted (the stages submit in order)."""

    def __init__(self, workers: int):
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dedup")

    def submit(self, fn: Callable, *args: Any, num_returns: int = 1) -> list:
        args = tuple(a.value() if isinstance(a, _Result) else a for a in args)
        future = self.pool.submit(fn, *args)
        return [_Result(future, i) for i in range(num_returns)] if num_returns > 1 else [_Result(future, None)]

    def get(self, handles: list) -> list:
        return [h.value() for h in handles]

    def close(self) -> None:
        self.pool.shutdown()


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
    stage_cpu: dict[str, float] = field(default_factory=dict)  # per stage (A-F): its tasks' CPU seconds
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
    # A task's output for the next stage is one object with a piece per partition (`_pick`). Only handles
    # still needed are kept: a stage's outputs are freed once its consumers have run.
    drops: list[Any] = []
    a_out = [engine.submit(shard_values, src, P, num_returns=3) for src in sources]
    drops += [o[1] for o in a_out]
    a_infos = [o[2] for o in a_out]
    b_out = [engine.submit(_pick, reduce_values, p, (P, masks), *[o[0] for o in a_out], num_returns=4)
             for p in range(P)]
    del a_out
    drops += [o[2] for o in b_out]
    b_infos, nodes = [o[3] for o in b_out], [o[1] for o in b_out]
    c_out = [engine.submit(_pick, candidate_pairs, q, (P, masks, hamming_distance, collect_pairs),
                           *[o[0] for o in b_out], num_returns=3) for q in range(P)]
    del b_out
    pair_handles = [o[1] for o in c_out] if collect_pairs else []
    c_infos, edges = [o[2] for o in c_out], [o[0] for o in c_out]
    del c_out
    a_info, b_info, c_info = engine.get(a_infos), engine.get(b_infos), engine.get(c_infos)
    infos = a_info + b_info + c_info
    wall["A-C"] = time.perf_counter() - t

    t = time.perf_counter()
    rounds, kind = 0, "large"  # edges: per task of the last stage, its edge pieces by node partition
    while True:
        if rounds >= max_rounds:
            raise RuntimeError(f"connected components did not converge in {max_rounds} rounds")
        d_out = [engine.submit(_pick, star_round, q, (kind, P), *edges, num_returns=2) for q in range(P)]
        d_info = engine.get([o[1] for o in d_out])
        infos += d_info
        rounds += 1
        if all(i["converged"] for i in d_info):
            break  # this round's input is the final forest of stars
        edges = [o[0] for o in d_out]
        kind = "small" if kind == "large" else "large"
    del d_out
    wall["D"] = time.perf_counter() - t

    t = time.perf_counter()
    e_out = [engine.submit(_pick, resolve_roots, q, (P, examples, len(nodes)), *nodes, *edges, num_returns=5)
             for q in range(P)]
    del nodes, edges
    f_out = [engine.submit(_pick, component_sizes, r, (examples,), *[o[0] for o in e_out], num_returns=3)
             for r in range(P)]
    drops += [o[1] for o in e_out]
    groups = {"drops": drops, "singles": [o[2] for o in e_out], "sizes": [o[0] for o in f_out],
              "examples": [o[3] for o in e_out] + [o[1] for o in f_out],
              "infos": [o[4] for o in e_out] + [o[2] for o in f_out], "pairs": pair_handles}
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
        stage_cpu={st: sum(i["cpu"] for i in infos if i.get("stage") == st) for st in "ABCDEF"},
        max_task_rows={st: max((i["rows"] for i in infos if i.get("stage") == st), default=0)
                       for st in "ABCD"},
        peak_task_rss_mb=max((i.get("peak_rss_mb", 0.0) for i in infos), default=0.0),
    )
