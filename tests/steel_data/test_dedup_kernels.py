"""The distributed SimHash stage's kernels against plain references: the radix sort, the packed block keys,
one table's candidate pairs, the local components, the star rounds on repeated edges, and the thread engine."""

from __future__ import annotations

from itertools import combinations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from steel_data.dedup import block_masks, deduplicate
from steel_data.dedup_distributed import (
    SerialEngine,
    ThreadEngine,
    _components,
    compact_key,
    deduplicate_distributed,
    group_pairs,
    radix_order,
    sorted_order,
    star_round,
)
from tests.steel_data._stars import components


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 3000), bits=st.integers(0, 64), distinct=st.integers(1, 50))
def test_radix_order_is_a_stable_argsort(seed, n, bits, distinct):
    rng = np.random.default_rng(seed)
    pool = rng.integers(0, 2**63, distinct, dtype=np.int64).astype(np.uint64) * np.uint64(2) + np.uint64(1)
    keys = pool[rng.integers(0, distinct, n)] if n else np.empty(0, np.uint64)  # repeats: stability shows
    if bits < 64:
        keys &= np.uint64((1 << bits) - 1)
    assert np.array_equal(radix_order(keys, bits), np.argsort(keys, kind="stable"))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 2000), span=st.sampled_from([1, 2**20, 2**40, 2**62]),
       negative=st.booleans())
def test_sorted_order_of_int64_ids(seed, n, span, negative):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, span, n, dtype=np.int64)
    if negative:
        ids -= span // 2
    ids = np.concatenate([ids, ids[: n // 3]])  # repeats
    assert np.array_equal(sorted_order(ids), np.argsort(ids, kind="stable"))


def test_sorted_order_of_the_extreme_ids():
    ids = np.array([np.iinfo(np.int64).max, 0, np.iinfo(np.int64).min, -1, 1, np.iinfo(np.int64).min], np.int64)
    assert np.array_equal(sorted_order(ids), np.argsort(ids, kind="stable"))


def _pext(value: int, mask: int) -> int:
    """The bits of `value` under `mask`, packed from the least significant (the x86 PEXT instruction)."""
    out, pos = 0, 0
    for bit in range(64):
        if (mask >> bit) & 1:
            out |= ((value >> bit) & 1) << pos
            pos += 1
    return out


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), mask=st.integers(0, 2**64 - 1))
def test_compact_key_packs_the_masked_bits(seed, mask):
    values = np.random.default_rng(seed).integers(0, 2**63, 50, dtype=np.int64).astype(np.uint64) << np.uint64(1)
    keys, bits = compact_key(values, mask)
    assert bits == bin(mask).count("1")
    assert keys.tolist() == [_pext(int(v), mask) for v in values]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 300), bases=st.integers(1, 40), flips=st.integers(0, 6),
       blocks=st.sampled_from([(6, 4), (6, 3), (4, 2), (8, 3)]))
def test_one_table_finds_every_close_pair_with_its_key(seed, n, bases, flips, blocks):
    """Each table finds the close pairs that agree on its key and on no earlier table's; all tables
    together find every close pair once."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2**63, bases, dtype=np.int64).astype(np.uint64) << np.uint64(1)
    values = base[rng.integers(0, bases, n)] if n else np.empty(0, np.uint64)
    for _ in range(flips):
        bit = rng.integers(0, 64, n).astype(np.uint64)
        values = values ^ np.where(rng.random(n) < 0.5, np.uint64(1) << bit, np.uint64(0))
    values = rng.permutation(np.unique(values))
    num_blocks, distance = blocks
    masks = [int(m) for m in block_masks(num_blocks, distance)]
    counted = set()
    for t, mask in enumerate(masks):
        a, b = group_pairs(values, mask, distance, masks[:t])
        got = {(min(i, j), max(i, j)) for i, j in zip(a.tolist(), b.tolist())}
        assert len(got) == len(a)  # each pair once
        diff = {(i, j): int(values[i]) ^ int(values[j]) for i, j in combinations(range(len(values)), 2)}
        want = {p for p, x in diff.items() if x & mask == 0 and bin(x).count("1") <= distance
                and all(x & e for e in masks[:t])}
        assert got == want
        assert not counted & got  # no pair counted by two tables
        counted |= got
    assert counted == {p for p, x in diff.items() if bin(x).count("1") <= distance}  # every close pair once


def _bfs_least(n: int, edges: list[tuple[int, int]]) -> list[int]:
    adj: list[list[int]] = [[] for _ in range(n)]
    for a, b in edges:
        adj[a].append(b)
        adj[b].append(a)
    least = list(range(n))
    seen = [False] * n
    for s in range(n):
        if seen[s]:
            continue
        comp, stack = [], [s]
        seen[s] = True
        while stack:
            u = stack.pop()
            comp.append(u)
            for v in adj[u]:
                if not seen[v]:
                    seen[v] = True
                    stack.append(v)
        for u in comp:
            least[u] = min(comp)
    return least


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 200), m=st.integers(0, 400), seed=st.integers(0, 2**32 - 1))
def test_components_label_each_node_with_its_least_member(n, m, seed):
    rng = np.random.default_rng(seed)
    edges = rng.integers(0, n, (m, 2))
    labels = _components(n, edges[:, 0], edges[:, 1])
    assert labels.tolist() == _bfs_least(n, [tuple(e) for e in edges.tolist()])


def test_components_of_a_long_shuffled_path():
    rng = np.random.default_rng(0)
    n = 20_000
    ids = rng.permutation(n)
    labels = _components(n, ids[:-1], ids[1:])
    assert (labels == 0).all()




@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 60), m=st.integers(1, 100), parts=st.integers(1, 4), seed=st.integers(0, 2**32 - 1))
def test_star_rounds_on_repeated_edges(n, m, parts, seed):
    """Edges arrive as a multiset (the same edge from several candidate tasks): repeats change nothing."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, (m, 2))
    repeated = np.repeat(idx, rng.integers(1, 4, m), axis=0)
    roots, _ = components(repeated, parts)
    least = _bfs_least(n, [tuple(e) for e in idx.tolist()])
    for node, root in roots.items():
        assert root == least[node]


def test_a_star_with_repeated_edges_is_converged_and_two_smaller_neighbours_are_not():
    star = np.array([[5, 1], [5, 1], [7, 1], [9, 1], [9, 1], [9, 1]], np.int64)
    src, dst = np.concatenate([star[:, 0], star[:, 1]]), np.concatenate([star[:, 1], star[:, 0]])
    for kind in ("large", "small"):
        assert star_round(kind, 1, (src, dst))[1]["converged"]
    two = np.array([[5, 1], [5, 2]], np.int64)
    src, dst = np.concatenate([two[:, 0], two[:, 1]]), np.concatenate([two[:, 1], two[:, 0]])
    assert not star_round("large", 1, (src, dst))[1]["converged"]


def test_thread_engine_gives_the_serial_result():
    rng = np.random.default_rng(7)
    n = 40_000
    base = rng.integers(0, 2**63, n // 4, dtype=np.int64).astype(np.uint64) << np.uint64(1)
    fp = base[rng.integers(0, len(base), n)]
    for _ in range(3):
        bit = rng.integers(0, 64, n).astype(np.uint64)
        fp ^= np.where(rng.random(n) < 0.5, np.uint64(1) << bit, np.uint64(0))
    fp[rng.random(n) < 0.1] = 0
    orders = rng.permutation(n).astype(np.int64)
    sources = [(orders[i::7], fp[i::7]) for i in range(7)]
    engine = ThreadEngine(2)
    try:
        threaded = deduplicate_distributed(sources, 6, 4, engine=engine, parts=5, examples=5, collect_pairs=True)
    finally:
        engine.close()
    serial = deduplicate_distributed(sources, 6, 4, engine=SerialEngine(), parts=5, examples=5, collect_pairs=True)
    ref = deduplicate(fp[np.argsort(orders)], 6, 4)
    assert np.array_equal(threaded.drop_orders, np.flatnonzero(~ref.keep))
    assert threaded.pairs == ref.pairs > 1000
    assert np.array_equal(threaded.drop_orders, serial.drop_orders)
    assert np.array_equal(threaded.cluster_sizes, serial.cluster_sizes)
    assert threaded.examples == serial.examples
    assert sorted(zip(*[x.tolist() for x in threaded.pair_values])) == sorted(
        zip(*[x.tolist() for x in serial.pair_values]))
