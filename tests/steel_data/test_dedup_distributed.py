"""The distributed SimHash stage against the reference (`steel_data.dedup`): same pairs, same components,
same survivors, same example clusters, for any sharding and partitioning; skew does not pile up."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from steel_data.dedup import connected_components, deduplicate, near_duplicate_pairs
from steel_data.dedup_distributed import SerialEngine, deduplicate_distributed
from tests.steel_data._stars import components


def clustered(rng: np.random.Generator, n: int, bases: int, flips: int) -> np.ndarray:
    """n fingerprints around `bases` random centres, each with up to `flips` random bits flipped."""
    base = rng.integers(0, 2**63, max(bases, 1), dtype=np.int64).astype(np.uint64) << np.uint64(1)
    v = base[rng.integers(0, len(base), n)]
    for _ in range(flips):
        bit = rng.integers(0, 64, n).astype(np.uint64)
        hit = rng.random(n) < 0.5
        v[hit] ^= np.uint64(1) << bit[hit]
    return v


def shard(fp: np.ndarray, cuts: list[int], rng: np.random.Generator) -> tuple[np.ndarray, list]:
    """Orders as the executor makes them ((shard << 32) | row) and per-shard sources in shuffled order."""
    bounds = [0, *sorted(set(cuts)), len(fp)]
    orders = np.empty(len(fp), np.int64)
    sources = []
    for s, (a, b) in enumerate(zip(bounds, bounds[1:])):
        o = (np.int64(s) << 32) | np.arange(b - a, dtype=np.int64)
        orders[a:b] = o
        perm = rng.permutation(b - a)
        sources.append((o[perm], fp[a:b][perm]))
    return orders, sources


def reference_examples(order, fp, cluster_of, clusters=10, members=5):
    """What LocalExecutor._cluster_examples picks: largest clusters (ties: smallest value), first members."""
    labels, _, sizes = np.unique(cluster_of, return_index=True, return_counts=True)
    big = [b for b in np.argsort(-sizes, kind="stable")[:clusters] if sizes[b] > 1]
    return [(int(sizes[b]), [(int(order[p]), int(fp[p])) for p in np.nonzero(cluster_of == labels[b])[0][:members]])
            for b in big]


def assert_same_as_reference(fp, orders, res, num_blocks=6, hamming_distance=4, examples=True):
    ref = deduplicate(fp, num_blocks, hamming_distance)
    assert np.array_equal(res.drop_orders, np.sort(orders[~ref.keep]))
    assert res.pairs == ref.pairs
    assert res.unique_values == ref.unique_values
    assert res.fingerprints == len(fp)
    assert np.array_equal(res.cluster_sizes, np.sort(ref.cluster_sizes))
    if examples:
        assert res.examples == reference_examples(orders, fp, ref.cluster_of)
    return ref


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 1500), bases=st.integers(1, 120),
       flips=st.integers(0, 5), zeros=st.floats(0, 0.5), shards=st.integers(1, 6), parts=st.integers(1, 7),
       blocks=st.sampled_from([(6, 4), (6, 3), (4, 2), (8, 3)]))
def test_same_result_as_the_reference(seed, n, bases, flips, zeros, shards, parts, blocks):
    rng = np.random.default_rng(seed)
    fp = clustered(rng, n, bases, flips)
    fp[rng.random(n) < zeros] = 0  # empty documents all hash to 0
    cuts = list(rng.integers(1, n, shards - 1)) if n > 1 else []
    orders, sources = shard(fp, cuts, rng)
    res = deduplicate_distributed(sources, *blocks, parts=parts, examples=10, collect_pairs=True)
    assert_same_as_reference(fp, orders, res, *blocks)
    # and the pairs themselves, each once
    uniq = np.unique(fp)
    pairs = near_duplicate_pairs(uniq, *blocks)
    got = sorted(zip(res.pair_values[0].tolist(), res.pair_values[1].tolist()))
    assert got == sorted(zip(uniq[pairs[:, 0]].tolist(), uniq[pairs[:, 1]].tolist()))




@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 60), m=st.integers(0, 120), parts=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_star_rounds_find_the_components_of_any_graph(n, m, parts, seed):
    rng = np.random.default_rng(seed)
    labels = rng.choice(10**9, n, replace=False).astype(np.int64)  # arbitrary node ids
    idx = rng.integers(0, n, (m, 2))
    edges = labels[idx]
    roots, _ = components(edges, parts)
    ref = connected_components(n, idx)  # smallest member index per node
    for i in range(n):
        if labels[i] not in roots:
            continue  # isolated nodes (self loops only) are not in the graph
        comp = labels[ref == ref[i]]
        assert roots[labels[i]] == comp.min()


def test_a_long_path_converges_in_few_rounds():
    rng = np.random.default_rng(0)
    n = 4096
    ids = rng.permutation(n).astype(np.int64)  # a path visiting the nodes in random order
    edges = np.stack([ids[:-1], ids[1:]], axis=1)
    roots, rounds = components(edges, parts=4)
    assert set(roots.values()) == {0}
    assert rounds <= 4 * math.ceil(math.log2(n))


def test_identical_fingerprints_collapse_per_shard():
    """100,000 documents with fingerprint 0 (Chinese under `tokenization: space`) and others: no task
    after the shard stage sees them one by one."""
    rng = np.random.default_rng(1)
    n = 150_000
    fp = clustered(rng, n, 20_000, 2)
    fp[rng.permutation(n)[:100_000]] = 0
    orders, sources = shard(fp, list(range(10_000, n, 10_000)), rng)
    res = deduplicate_distributed(sources, 6, 4, parts=4, examples=10)
    assert_same_as_reference(fp, orders, res)
    assert res.cluster_sizes.max() >= 100_000
    assert res.max_task_rows["A"] <= 10_000  # one shard
    assert res.max_task_rows["B"] < n / 2  # the zeros arrive as one row per shard
    assert res.max_task_rows["C"] < res.unique_values * 15 / 2


def test_on_ray_same_result_and_no_task_holds_everything(ray_driver):
    from steel_data.ray_executor import RayEngine

    rng = np.random.default_rng(2)
    n = 300_000
    fp = clustered(rng, n, 60_000, 3)
    fp[rng.permutation(n)[:100_000]] = 0
    orders, sources = shard(fp, list(range(25_000, n, 25_000)), rng)
    res = deduplicate_distributed(sources, 6, 4, engine=RayEngine(), parts=6, examples=10)
    assert_same_as_reference(fp, orders, res)
    assert res.pairs > 10_000 and res.cluster_sizes.max() >= 100_000
    # C receives each distinct value once per block table (15): a task holds a share of those rows
    limits = {"A": n / 2, "B": n / 2, "C": 15 * res.unique_values / 2, "D": n / 2}
    for stage, rows in res.max_task_rows.items():
        assert rows < limits[stage], (stage, rows)


@pytest.mark.slow
def test_two_million_fingerprints_on_ray(ray_driver):
    """Millions of fingerprints in a few partitions: completes, and no task holds a large share."""
    from steel_data.ray_executor import RayEngine

    rng = np.random.default_rng(3)
    n = 2_000_000
    fp = clustered(rng, n, 500_000, 3)
    fp[:100_000] = 0
    orders = np.arange(n, dtype=np.int64)
    sources = [(orders[i::20], fp[i::20]) for i in range(20)]
    res = deduplicate_distributed(sources, 6, 4, engine=RayEngine(), parts=8)
    assert res.fingerprints == n
    exact_dups = n - len(np.unique(fp))
    assert len(res.drop_orders) >= exact_dups and res.pairs > 0
    limits = {"A": n / 3, "B": n / 3, "C": 15 * res.unique_values / 3, "D": n / 3}
    for stage, rows in res.max_task_rows.items():
        assert rows < limits[stage], (stage, rows)
