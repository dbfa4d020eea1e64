"""SimHash fingerprints and the exact global dedup stage."""

from __future__ import annotations

from hashlib import md5

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from operators import registry
from steel_data.dedup import deduplicate, near_duplicate_pairs


def reference_simhash(shingles: list[bytes]) -> int:
    if not shingles:
        return 0
    v = [0] * 64
    for s in shingles:
        h = int.from_bytes(md5(s).digest()[:8], "big")
        for i in range(64):
            v[i] += 1 if (h >> i) & 1 else -1
    return sum(1 << i for i in range(64) if v[i] > 0)


def test_fingerprint_matches_the_definition():
    op = registry.build("document_simhash_deduplicator", {})
    text = "The Quick brown fox jumps over the lazy dog  again and again"
    tokens = [t for t in text.lower().split(" ") if t]
    shingles = [" ".join(tokens[i : i + 6]).encode() for i in range(len(tokens) - 5)]
    assert op.fingerprint(text) == reference_simhash(shingles)


def test_short_or_unspaced_documents_get_zero_and_the_fix_is_opt_in():
    op = registry.build("document_simhash_deduplicator", {})
    assert op.fingerprint("这是一段没有空格的中文文本，很长很长很长") == 0
    assert op.fingerprint_and_shingled("a b c")[1] is False
    fixed = registry.build("document_simhash_deduplicator", {"empty_fingerprint_fallback": "character"})
    assert fixed.fingerprint("这是一段没有空格的中文文本") != 0


def test_newlines_do_not_split_space_tokens():
    op = registry.build("document_simhash_deduplicator", {})
    assert op.fingerprint_and_shingled("a\nb c d e f")[1] is False  # "a\nb" is one token: 5 tokens
    assert op.fingerprint_and_shingled("a b c d e f")[1] is True
    assert op.fingerprint("a\nb c d e f g") == reference_simhash([b"a\nb c d e f g"])


def test_ignore_pattern_and_punctuation_tokenization():
    op = registry.build("document_simhash_deduplicator", {"ignore_pattern": r"\p{P}"})
    assert op.fingerprint("a, b. c d e f g!") == op.fingerprint("a b c d e f g")
    punct = registry.build("document_simhash_deduplicator", {"tokenization": "punctuation", "window_size": 2})
    assert punct.shingles("a,b.c") == [b"a b", b"b c"]


def test_hamming_distance_must_be_below_blocks():
    import pytest

    with pytest.raises(registry.RecipeError, match="hamming_distance"):
        registry.build("document_simhash_deduplicator", {"num_blocks": 4, "hamming_distance": 4})


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), min_size=0, max_size=60), st.integers(0, 2**64 - 1))
def test_pairs_are_exactly_the_brute_force_pairs(values, seed):
    rng = np.random.default_rng(seed % 2**32)
    base = np.array(values, dtype=np.uint64)
    # plant near neighbours: flip up to 5 random bits of some values
    flips = [int(v) ^ int(sum(1 << int(b) for b in rng.choice(64, rng.integers(1, 6), replace=False))) for v in values[:20]]
    uniq = np.unique(np.concatenate([base, np.array(flips, dtype=np.uint64)]))
    got = {tuple(p) for p in near_duplicate_pairs(uniq, 6, 4).tolist()}
    want = {
        (i, j)
        for i in range(len(uniq))
        for j in range(i + 1, len(uniq))
        if bin(int(uniq[i]) ^ int(uniq[j])).count("1") <= 4
    }
    assert got == want


def test_survivor_rule_first_in_input_order_and_chains_merge():
    a = 0
    b = 0b1111  # distance 4 from a
    c = 0b11111111  # distance 4 from b, 8 from a: joined through the chain
    z = (1 << 63) | (1 << 40) | (1 << 20) | (1 << 10) | (1 << 5) | 1  # far from all
    fps = np.array([z, c, a, b, z, a], dtype=np.uint64)
    res = deduplicate(fps, 6, 4)
    assert res.keep.tolist() == [True, True, False, False, False, False]
    assert res.clusters == 2
