"""The sample order: which window is global sample i of epoch e, as a pure function of (dataset, seed, epoch).

An epoch has `manifest.epoch_windows` samples, laid out virtually as each source's `epoch_windows` in manifest
order. Virtual sample j of a source with W windows is the source's window P_s(j mod W), where P_s is a keyed
permutation of [0, W): j < W visits every window once (or, downsampled, a subset that changes every epoch), and an
upsampled source repeats the cycle. A keyed permutation G of [0, epoch_windows) shuffles the whole epoch:
global sample i is virtual sample G(i).

The permutations are Feistel networks over the next power of four with cycle walking, keyed from
(seed, epoch, purpose), so any sample is computed on its own in O(1) memory (beyond the per-shard window counts)
and O(1) expected time: nothing depends on world size, rank, or what was read before. A trainer's rank asks for
its slice of global indices; its stream state is just (epoch, samples consumed).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from steel_data.shards import Manifest, TokenShards

_ROUNDS = 6
_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _round_keys(seed: int, epoch: int, purpose: str) -> list[np.uint64]:
    keys = []
    for r in range(_ROUNDS):
        digest = hashlib.blake2b(f"steel-order/v1/{seed}/{epoch}/{purpose}/{r}".encode(), digest_size=8).digest()
        keys.append(np.uint64(int.from_bytes(digest, "little")))
    return keys


def _mix(x: np.ndarray, key: np.uint64) -> np.ndarray:
    """SplitMix64's finaliser of (x + key): a fast, well-spread 64-bit hash."""
    with np.errstate(over="ignore"):
        z = x + key
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


class KeyedPermutation:
    """A bijection of [0, n) chosen by (seed, epoch, purpose); evaluated on arrays of positions."""

    def __init__(self, n: int, seed: int, epoch: int, purpose: str):
        if n < 0:
            raise ValueError("n must be >= 0")
        self.n = n
        bits = max(2, (n - 1).bit_length())
        self.half = (bits + 1) // 2
        self.mask = np.uint64((1 << self.half) - 1)
        self.keys = _round_keys(seed, epoch, purpose)

    def _feistel(self, x: np.ndarray) -> np.ndarray:
        h = np.uint64(self.half)
        left, right = x >> h, x & self.mask
        for key in self.keys:
            left, right = right, left ^ (_mix(right, key) & self.mask)
        return (left << h) | right

    def __call__(self, positions) -> np.ndarray:
        x = np.asarray(positions, dtype=np.uint64)
        if x.size and int(x.max()) >= self.n:
            raise IndexError(f"position {int(x.max())} outside [0, {self.n})")
        if self.n <= 1:
            return x.astype(np.int64)
        n = np.uint64(self.n)
        out = self._feistel(x)
        walking = out >= n
        while walking.any():  # cycle walking: the domain is < 4n, so a few steps on average
            out[walking] = self._feistel(out[walking])
            walking = out >= n
        return out.astype(np.int64)


def _dataset(dataset) -> TokenShards:
    return dataset if isinstance(dataset, TokenShards) else TokenShards(dataset)


def _manifest(dataset) -> Manifest:
    if isinstance(dataset, Manifest):
        return dataset
    if isinstance(dataset, TokenShards):
        return dataset.manifest
    return TokenShards(Path(dataset)).manifest


def epoch_length(dataset) -> int:
    """Samples per epoch (windows after the mixture's up- and down-sampling)."""
    return _manifest(dataset).epoch_windows


def sample_index(dataset, seed: int, epoch: int, start: int, count: int) -> np.ndarray:
    """(shard, window) of global samples [start, start + count) of an epoch: int64 array [count, 2].

    `dataset` is a `TokenShards`, a `Manifest` or a shard-set folder.
    """
    m = _manifest(dataset)
    total = m.epoch_windows
    if start < 0 or count < 0 or start + count > total:
        raise IndexError(f"samples [{start}, {start + count}) outside epoch of {total} samples")
    return sample_index_at(m, seed, epoch, np.arange(start, start + count, dtype=np.uint64))


def sample_index_at(dataset, seed: int, epoch: int, positions) -> np.ndarray:
    """(shard, window) of the given global samples of an epoch (any positions in [0, epoch_windows), e.g. one
    rank's strided share): int64 array [len(positions), 2]; row i equals `sample_index(.., positions[i], 1)`."""
    m = _manifest(dataset)
    total = m.epoch_windows
    positions = np.asarray(positions, dtype=np.uint64)
    count = len(positions)
    out = np.zeros((count, 2), dtype=np.int64)
    if count == 0:
        return out
    virtual = KeyedPermutation(total, seed, epoch, "epoch")(positions)
    src_bounds = np.cumsum([0] + [s.epoch_windows for s in m.sources])
    src_of = np.searchsorted(src_bounds, virtual, side="right") - 1
    for s, src in enumerate(m.sources):
        sel = np.nonzero(src_of == s)[0]
        if not len(sel):
            continue
        shard_ids = [i for i, sh in enumerate(m.shards) if sh.source == src.name and sh.windows > 0]
        shard_bounds = np.cumsum([0] + [m.shards[i].windows for i in shard_ids])
        j = virtual[sel] - src_bounds[s]
        w = KeyedPermutation(src.windows, seed, epoch, f"source/{src.name}")((j % src.windows).astype(np.uint64))
        k = np.searchsorted(shard_bounds, w, side="right") - 1
        out[sel, 0] = np.asarray(shard_ids, dtype=np.int64)[k]
        out[sel, 1] = w - shard_bounds[k]
    return out


def samples(dataset, seed: int, epoch: int, start: int, count: int) -> np.ndarray:
    """Global samples [start, start + count) of an epoch: tokens, array [count, seq_len + 1].

    Pure in (dataset, seed, epoch): the same on any world size, and `samples(.., s, a + b)` equals
    `samples(.., s, a)` followed by `samples(.., s + a, b)`.
    """
    ds = _dataset(dataset)
    idx = sample_index(ds, seed, epoch, start, count)
    out = np.empty((count, ds.window), dtype=ds.dtype)
    for row, (shard, k) in enumerate(idx):
        out[row] = ds.window_tokens(int(shard), int(k))
    return out
