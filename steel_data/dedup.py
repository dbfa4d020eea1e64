"""The global SimHash stage: exact near-duplicate pairs, connected components, first-in-order survivors.

Pairs: every two distinct 64-bit values within Hamming distance `d`. Split the bits into `b` blocks
(widths `[i*64//b, (i+1)*64//b)`); two values within distance `d` differ in at most `d` blocks, so they
agree on at least one choice of `b - d` blocks. For each of the C(b, b-d) choices, sort the values by
those blocks and compare neighbours with equal keys; verify candidates by popcount. This is exact.

Survivors follow Data-Juicer: within a component (values linked by pairs, chains merged) the first
document in input order survives; a value in no pair keeps its first document only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np


def block_masks(num_blocks: int, hamming_distance: int) -> list[np.uint64]:
    """One 64-bit key mask per choice of `num_blocks - hamming_distance` blocks."""
    blocks = []
    for i in range(num_blocks):
        lo, hi = i * 64 // num_blocks, (i + 1) * 64 // num_blocks
        blocks.append(((1 << (hi - lo)) - 1) << lo)
    masks = []
    for chosen in combinations(range(num_blocks), num_blocks - hamming_distance):
        m = 0
        for i in chosen:
            m |= blocks[i]
        masks.append(np.uint64(m))
    return masks


def popcount(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x)


def near_duplicate_pairs(values: np.ndarray, num_blocks: int, hamming_distance: int) -> np.ndarray:
    """All index pairs (i < j) of distinct entries of `values` (unique uint64) within the distance.

    Returns an int64 array of shape (n_pairs, 2), sorted, without repeats.
    """
    values = np.asarray(values, dtype=np.uint64)
    n = len(values)
    found = []
    for mask in block_masks(num_blocks, hamming_distance):
        keys = values & mask
        order = np.argsort(keys, kind="stable")
        sk = keys[order]
        active = np.nonzero(sk[1:] == sk[:-1])[0]  # positions whose right neighbour shares the key
        k = 1
        while active.size:
            a, b = order[active], order[active + k]
            close = popcount(values[a] ^ values[b]) <= hamming_distance
            if close.any():
                lo, hi = np.minimum(a[close], b[close]), np.maximum(a[close], b[close])
                found.append(lo.astype(np.int64) * n + hi)
            k += 1
            nxt = active + k
            inside = nxt < n
            active = active[inside]
            active = active[sk[active + k] == sk[active]]
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    codes = np.unique(np.concatenate(found))
    return np.stack([codes // n, codes % n], axis=1)


def connected_components(n: int, pairs: np.ndarray) -> np.ndarray:
    """Component label (the smallest member index) for each of n nodes, by min-label propagation with
    pointer jumping (vectorised; converges in a few rounds)."""
    labels = np.arange(n, dtype=np.int64)
    if len(pairs) == 0:
        return labels
    a, b = pairs[:, 0], pairs[:, 1]
    while True:
        m = np.minimum(labels[a], labels[b])
        before = labels.copy()
        np.minimum.at(labels, a, m)
        np.minimum.at(labels, b, m)
        while True:  # pointer jumping: point every node at its label's label
            jumped = labels[labels]
            if np.array_equal(jumped, labels):
                break
            labels = jumped
        if np.array_equal(labels, before):
            return labels


@dataclass
class DedupResult:
    keep: np.ndarray  # bool per document, in the given (input) order
    unique_values: int
    pairs: int
    clusters: int  # components holding more than one document
    cluster_sizes: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    cluster_of: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # component per document


def deduplicate(fingerprints: np.ndarray, num_blocks: int, hamming_distance: int) -> DedupResult:
    """Survivor mask for documents whose SimHash values are given in input order."""
    fingerprints = np.asarray(fingerprints, dtype=np.uint64)
    if len(fingerprints) == 0:
        return DedupResult(keep=np.zeros(0, bool), unique_values=0, pairs=0, clusters=0)
    uniq, value_of_doc = np.unique(fingerprints, return_inverse=True)
    pairs = near_duplicate_pairs(uniq, num_blocks, hamming_distance)
    labels = connected_components(len(uniq), pairs)
    comp_of_doc = labels[value_of_doc]
    _, first = np.unique(comp_of_doc, return_index=True)
    keep = np.zeros(len(fingerprints), dtype=bool)
    keep[first] = True
    _, sizes = np.unique(comp_of_doc, return_counts=True)
    multi = sizes[sizes > 1]
    return DedupResult(
        keep=keep,
        unique_values=len(uniq),
        pairs=len(pairs),
        clusters=int(len(multi)),
        cluster_sizes=multi,
        cluster_of=comp_of_doc,
    )
