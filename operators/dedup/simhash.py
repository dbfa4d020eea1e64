"""document_simhash_deduplicator: the per-document SimHash fingerprint (Data-Juicer / simhash-pybind).

The global stage (near-duplicate pairs, connected components, survivors) needs every fingerprint and
lives in `steel_data.dedup`.
"""

from __future__ import annotations

from hashlib import md5
from typing import Literal

import numpy as np
import regex
from pydantic import PositiveInt, field_validator, model_validator

from operators.base import Deduplicator, OpParams
from operators.registry import register

_PUNCTUATION = regex.compile(r"\p{P}")


class SimhashParams(OpParams):
    tokenization: Literal["space", "punctuation", "character"] = "space"
    window_size: PositiveInt = 6
    lowercase: bool = True
    ignore_pattern: str | None = None
    num_blocks: PositiveInt = 6
    hamming_distance: PositiveInt = 4
    empty_fingerprint_fallback: Literal["none", "character"] = "none"
    """Fix (opt-in): a document that yields no shingle (fewer than `window_size` tokens, as most
    Chinese text under `space` tokenization) gets a fingerprint of its character shingles instead of 0,
    so unrelated short documents no longer collapse into one duplicate cluster."""

    @field_validator("ignore_pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value:
            try:
                regex.compile(value)
            except regex.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _distance_below_blocks(self):
        if self.hamming_distance >= self.num_blocks:
            raise ValueError("hamming_distance must be smaller than num_blocks (the block search is exact only then)")
        if self.num_blocks > 64:
            raise ValueError("num_blocks must be at most 64")
        return self


def shingle_hash(shingle: bytes) -> int:
    """The first 8 bytes of the MD5 digest, big-endian: simhash-pybind's `unsigned_hash`."""
    return int.from_bytes(md5(shingle).digest()[:8], "big")


def simhash_of(hashes: list[int]) -> int:
    """Bit i is set when more than half of the hashes have bit i set (ties give 0); no hashes -> 0."""
    if not hashes:
        return 0
    arr = np.array(hashes, dtype=np.uint64)
    bits = np.unpackbits(arr.view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")
    set_counts = bits.sum(axis=0, dtype=np.int64)
    winners = (2 * set_counts > len(hashes)).astype(np.uint8)
    return int(np.packbits(winners, bitorder="little").view("<u8")[0])


@register
class DocumentSimhashDeduplicator(Deduplicator):
    name = "document_simhash_deduplicator"
    summary = "Near-duplicate removal by 64-bit SimHash within a Hamming distance; first in input order survives."
    Params = SimhashParams
    stat_key = "simhash"

    def setup(self) -> None:
        p = self.params
        self._ignore = regex.compile(p.ignore_pattern) if p.ignore_pattern else None

    def shingles(self, text: str, tokenization: str | None = None) -> list[bytes]:
        p = self.params
        w = p.window_size
        tokenization = tokenization or p.tokenization
        if tokenization == "character":
            return [text[i : i + w].encode("utf-8", "surrogatepass") for i in range(len(text) - w + 1)]
        if tokenization == "punctuation":
            tokens = _PUNCTUATION.split(text)
        else:
            tokens = [t for t in text.split(" ") if t]
        return [" ".join(tokens[i : i + w]).encode("utf-8", "surrogatepass") for i in range(len(tokens) - w + 1)]

    def fingerprint(self, text: str) -> int:
        return self.fingerprint_and_shingled(text)[0]

    def fingerprint_and_shingled(self, text: str) -> tuple[int, bool]:
        """The SimHash and whether the document yielded any shingle under the configured tokenization
        (documents without one get 0: the empty-fingerprint audit counts them)."""
        self.ensure_ready()
        if self.params.lowercase:
            text = text.lower()
        if self._ignore is not None:
            text = self._ignore.sub("", text)
        shingles = self.shingles(text)
        shingled = bool(shingles)
        if not shingles and self.params.empty_fingerprint_fallback == "character":
            shingles = self.shingles(text, "character")
        return simhash_of([shingle_hash(s) for s in shingles]), shingled
