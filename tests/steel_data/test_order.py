"""The sample order: a pure function of (dataset, seed, epoch), the same on every world size, resumable."""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
import pytest

from steel_data import tokenize as tk
from steel_data.order import KeyedPermutation, epoch_length, sample_index, samples
from steel_data.shards import Manifest, TokenShards
from tests.steel_data import _tokdata as td


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Three sources mixed 67 / 21.8 / 11.3, several shards each."""
    tmp = tmp_path_factory.mktemp("order")
    srcs = td.sources(tmp)
    tk.tokenize(tk.TokenizeConfig(inputs=[f"{k}={v[0]}" for k, v in srcs.items()], output=tmp / "out", seq_len=15,
                                  weights=[67, 21.8, 11.3], shard_bytes=8000, workers=1))
    return TokenShards(tmp / "out")


@pytest.mark.parametrize("n", [1, 2, 3, 5, 16, 17, 255, 1000, 4097])
def test_keyed_permutation_is_a_bijection(n):
    p = KeyedPermutation(n, seed=1, epoch=0, purpose="t")
    out = p(np.arange(n))
    assert sorted(out.tolist()) == list(range(n))
    assert p(np.arange(n)).tolist() == out.tolist()  # deterministic
    if n >= 16:
        assert out.tolist() != list(range(n))
        assert KeyedPermutation(n, 1, 1, "t")(np.arange(n)).tolist() != out.tolist()  # epoch changes it
        assert KeyedPermutation(n, 2, 0, "t")(np.arange(n)).tolist() != out.tolist()  # seed changes it


def test_same_samples_on_any_world_size(mixed):
    n = epoch_length(mixed)
    full = samples(mixed, seed=7, epoch=3, start=0, count=n)
    assert full.shape == (n, mixed.window)
    for world in (2, 3, 8):
        # each rank reads a contiguous slice of the global order ...
        bounds = np.linspace(0, n, world + 1).astype(int)
        parts = [samples(mixed, 7, 3, int(a), int(b - a)) for a, b in zip(bounds[:-1], bounds[1:])]
        assert np.array_equal(np.concatenate(parts), full)
        # ... or every world-th sample, one at a time
        for rank in range(world):
            for i in range(rank, n, world * 17):
                assert np.array_equal(samples(mixed, 7, 3, i, 1)[0], full[i])


def test_resume_equals_one_pass(mixed):
    n = epoch_length(mixed)
    whole = sample_index(mixed, 1, 0, 0, n)
    consumed = 0
    pieces = []
    for step in (5, 1, 100, 37, n):  # a trainer reading in steps, stopping and resuming from (epoch, consumed)
        count = min(step, n - consumed)
        pieces.append(sample_index(mixed, 1, 0, consumed, count))
        consumed += count
    assert np.array_equal(np.concatenate(pieces), whole)


def test_epoch_visits_the_mixture(mixed):
    m = mixed.manifest
    n = epoch_length(mixed)
    assert n == m.epoch_windows == sum(s.epoch_windows for s in m.sources)
    idx = sample_index(mixed, 0, 0, 0, n)
    source_of_shard = [s.source for s in m.shards]
    per_source = Counter(source_of_shard[s] for s, _ in idx)
    assert per_source == {s.name: s.epoch_windows for s in m.sources}
    by = {s.name: s for s in m.sources}
    assert by["zh"].ratio < 1 < by["code"].ratio
    seen = Counter(map(tuple, idx.tolist()))
    for name, src in by.items():
        wins = [(i, k) for i, sh in enumerate(m.shards) if sh.source == name for k in range(sh.windows)]
        counts = [seen.get(w, 0) for w in wins]
        lo, hi = int(src.ratio), int(src.ratio) + (src.ratio != int(src.ratio))
        assert set(counts) <= {lo, hi}  # an upsampled window repeats floor or ceil(ratio) times
        assert sum(counts) == src.epoch_windows
    # a downsampled source shows a different subset next epoch; the order changes too
    nxt = sample_index(mixed, 0, 1, 0, n)
    zh_shards = {i for i, s in enumerate(source_of_shard) if s == "zh"}
    zh0 = {tuple(x) for x in idx.tolist() if x[0] in zh_shards}
    zh1 = {tuple(x) for x in nxt.tolist() if x[0] in zh_shards}
    assert zh0 != zh1 and not np.array_equal(idx, nxt)
    assert np.array_equal(sample_index(mixed, 0, 0, 0, n), idx)  # and is a pure function


def test_samples_are_windows(mixed):
    idx = sample_index(mixed, 3, 2, 10, 20)
    got = samples(mixed, 3, 2, 10, 20)
    for row, (s, k) in zip(got, idx):
        assert np.array_equal(row, mixed.window_tokens(int(s), int(k)))
        assert len(row) == mixed.seq_len + 1


def test_out_of_epoch_refused(mixed):
    n = epoch_length(mixed)
    with pytest.raises(IndexError):
        sample_index(mixed, 0, 0, n - 1, 2)
    with pytest.raises(IndexError):
        sample_index(mixed, 0, 0, -1, 1)
    assert sample_index(mixed, 0, 0, n, 0).shape == (0, 2)


def test_lookup_cost_does_not_grow_with_the_dataset(mixed):
    """A manifest describing ~10^13 windows: a lookup touches only the requested samples."""
    m = mixed.manifest.model_copy(deep=True)
    for sh in m.shards:
        sh.windows *= 10**10
    for s in m.sources:
        s.windows *= 10**10
        s.epoch_windows *= 10**10
    m.epoch_windows = sum(s.epoch_windows for s in m.sources)
    big = Manifest.model_validate(m.model_dump())
    t = time.perf_counter()
    idx = sample_index(big, 5, 0, big.epoch_windows - 1000, 1000)
    assert time.perf_counter() - t < 1.0
    assert idx.shape == (1000, 2)
    for s, k in idx:
        assert 0 <= k < big.shards[s].windows
    assert len({tuple(x) for x in idx.tolist()}) > 990
