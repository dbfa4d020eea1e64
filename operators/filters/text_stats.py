"""Text-statistics filters. Each computes one statistic from the shared `Doc` intermediates."""

from __future__ import annotations

import math
import sys
from collections import Counter
from functools import lru_cache
from pathlib import Path

import numpy as np
from pydantic import PositiveInt, model_validator

from operators.base import Filter, FilterParams
from operators.charsets import single_char_specials
from operators.doc import WORD_SEPARATORS, Doc
from operators.registry import register

_MAX = sys.maxsize


@lru_cache(maxsize=None)
def _codepoint_table(kind: str) -> np.ndarray:
    """A bool table over all code points for a character class, so that counting is one numpy gather."""
    if kind == "special":
        table = np.zeros(0x110000, dtype=bool)
        table[[ord(c) for c in single_char_specials()]] = True
        return table
    return _cached_class_table(kind)


def _cached_class_table(kind: str) -> np.ndarray:
    """str.isalnum / str.isalpha over all code points. Building it costs ~0.3 s of Python per process, so
    it is cached on disk, keyed by the Unicode database version that decides it."""
    import os
    import tempfile
    import unicodedata
    from pathlib import Path

    test = {"alnum": str.isalnum, "alpha": str.isalpha}[kind]
    cache = Path(os.environ.get("STEEL_CACHE", Path.home() / ".cache" / "steel"))
    path = cache / f"{kind}-unicode-{unicodedata.unidata_version}.npy"
    try:
        packed = np.load(path)
        return np.unpackbits(packed, count=0x110000).astype(bool)
    except (OSError, ValueError):
        pass
    table = np.fromiter((test(chr(i)) for i in range(0x110000)), dtype=bool, count=0x110000)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache, suffix=".npy")
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, np.packbits(table))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home only costs the rebuild
    return table


def count_class(doc: Doc, kind: str) -> int:
    return int(np.count_nonzero(_codepoint_table(kind)[doc.codepoints]))


class AlphanumericParams(FilterParams):
    tokenization: bool = False
    min_ratio: float = 0.25
    max_ratio: float = float(_MAX)
    hf_tokenizer: str = "EleutherAI/pythia-6.9b-deduped"
    """Steel extension: the Hugging Face tokenizer used when `tokenization` is true, as a path to a
    `tokenizer.json` (or a folder holding one) or a hub id (hub ids need network access)."""


@register
class AlphanumericFilter(Filter):
    name = "alphanumeric_filter"
    summary = "Ratio of alphanumeric characters to characters (or of letters to tokenizer tokens)."
    Params = AlphanumericParams
    bounds = ("min_ratio", "max_ratio")
    stat_keys_doc = "alnum_ratio | alpha_token_ratio"

    @property
    def stat_key(self) -> str:  # type: ignore[override]
        return "alpha_token_ratio" if self.params.tokenization else "alnum_ratio"

    def setup(self) -> None:
        if self.params.tokenization:
            self._tokenizer = load_hf_tokenizer(self.params.hf_tokenizer)

    def compute_stat(self, doc: Doc) -> float:
        text = doc.text
        if self.params.tokenization:
            letters = count_class(doc, "alpha")
            tokens = len(self._tokenizer.encode(text, add_special_tokens=False).tokens) if text else 0
            return letters / tokens if tokens else 0.0
        return count_class(doc, "alnum") / len(text) if text else 0.0


def load_hf_tokenizer(name_or_path: str):
    """A `tokenizers.Tokenizer` from a tokenizer.json file, a folder holding one, or a hub id."""
    from tokenizers import Tokenizer

    path = Path(name_or_path)
    if path.is_dir():
        path = path / "tokenizer.json"
    if path.is_file():
        return Tokenizer.from_file(str(path))
    return Tokenizer.from_pretrained(name_or_path)


class LineLengthParams(FilterParams):
    min_len: int = 10
    max_len: int = _MAX


@register
class AverageLineLengthFilter(Filter):
    name = "average_line_length_filter"
    summary = "Characters per line (str.splitlines)."
    Params = LineLengthParams
    stat_key = "avg_line_length"
    bounds = ("min_len", "max_len")

    def compute_stat(self, doc: Doc) -> float:
        lines = doc.lines
        return len(doc.text) / len(lines) if lines else 0.0


@register
class MaximumLineLengthFilter(Filter):
    name = "maximum_line_length_filter"
    summary = "Length of the longest line."
    Params = LineLengthParams
    stat_key = "max_line_length"
    bounds = ("min_len", "max_len")

    def compute_stat(self, doc: Doc) -> int:
        lines = doc.lines
        return max(map(len, lines)) if lines else 0


class TextLengthParams(FilterParams):
    min_len: int = 10
    max_len: int = _MAX


@register
class TextLengthFilter(Filter):
    name = "text_length_filter"
    summary = "Number of code points."
    Params = TextLengthParams
    stat_key = "text_len"
    bounds = ("min_len", "max_len")

    def compute_stat(self, doc: Doc) -> int:
        return len(doc.text)


class RatioParams(FilterParams):
    min_ratio: float = 0.0
    max_ratio: float = 0.25


@register
class SpecialCharactersFilter(Filter):
    name = "special_characters_filter"
    summary = "Share of special characters (ASCII punctuation/digits/space, ~190 others, emoji)."
    Params = RatioParams
    stat_key = "special_char_ratio"
    bounds = ("min_ratio", "max_ratio")

    def compute_stat(self, doc: Doc) -> float:
        return count_class(doc, "special") / len(doc.text) if doc.text else 0.0


class CharRepetitionParams(FilterParams):
    rep_len: PositiveInt = 10
    min_ratio: float = 0.0
    max_ratio: float = 0.5


_HASH_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


def _ngram_hashes(codepoints: np.ndarray, n: int) -> np.ndarray:
    """The polynomial hash (mod 2^64) of every overlapping n-gram of `codepoints`, in order."""
    wide = codepoints.astype(np.uint64)
    m = len(codepoints) - n + 1
    h = wide[:m].copy()
    with np.errstate(over="ignore"):
        for j in range(1, n):
            h *= _HASH_MULTIPLIER
            h += wide[j : j + m]
    return h


def char_ngram_counts(codepoints: np.ndarray, n: int) -> np.ndarray:
    """Counts of each distinct overlapping n-gram of code points, exactly.

    The n-grams are hashed (polynomial, mod 2^64), sorted by hash, and every pair of neighbours with
    equal hashes is checked to be the same n-gram; a collision (never seen in practice) falls back to
    comparing the n-grams as bytes. Counts come back in no particular order.
    """
    h = _ngram_hashes(codepoints, n)
    order = np.argsort(h)
    sorted_h = h[order]
    same = sorted_h[1:] == sorted_h[:-1]
    if same.any():
        pairs = np.flatnonzero(same)
        windows = np.lib.stride_tricks.sliding_window_view(codepoints, n)
        if not (windows[order[pairs]] == windows[order[pairs + 1]]).all():
            return char_ngram_counts_bytes(codepoints, n)
    bounds = np.flatnonzero(np.concatenate(([True], ~same, [True])))
    return np.diff(bounds)


def char_ngram_counts_bytes(codepoints: np.ndarray, n: int) -> np.ndarray:
    """Reference: the n-grams compared as raw bytes (slower: a sort of n*4-byte keys)."""
    windows = np.lib.stride_tricks.sliding_window_view(codepoints, n)
    as_bytes = np.ascontiguousarray(windows).view(np.dtype((np.void, 4 * n))).ravel()
    _, counts = np.unique(as_bytes, return_counts=True)
    return counts


_ALL_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)


def char_repetition_ratios(codepoint_arrays: list[np.ndarray], n: int) -> np.ndarray | None:
    """`CharacterRepetitionFilter.compute_stat` for many documents at once (None: a hash collision was seen).

    Per-document numpy costs ~15 calls of fixed overhead for a few hundred n-grams; here every step runs
    once per batch. The n-gram hashes of all documents are computed over their concatenation; each
    document's keys (hash bits above, the n-gram's position below) are sorted in its own row of a padded
    2-D array (rows of one power-of-two length per size class: numpy sorts short rows several times faster
    than one long array); equal neighbours are verified code point by code point, so the counts are exact.
    """
    docs = len(codepoint_arrays)
    lengths = np.fromiter(map(len, codepoint_arrays), dtype=np.int64, count=docs)
    windows = np.maximum(lengths - n + 1, 0)
    ratios = np.zeros(docs)
    if not windows.any():
        return ratios
    text = np.concatenate(codepoint_arrays)
    hashes = _ngram_hashes(text, n)  # n-grams across documents too; only those inside one are looked up
    with np.errstate(over="ignore"):
        hashes *= _HASH_MULTIPLIER  # carries the last code points' low bits up into the kept high bits
    starts = np.cumsum(lengths) - lengths
    pos_bits = int(windows.max()).bit_length() + 1  # a position never has all its bits set: no key is ~0
    pos_mask = np.uint64((1 << pos_bits) - 1)
    shift = np.uint64(pos_bits)

    key_parts, doc_parts = [], []
    active = np.flatnonzero(windows)
    size_class = np.maximum(4, np.ceil(np.log2(windows[active])).astype(np.int64))
    for cls in np.unique(size_class):
        rows = active[size_class == cls]
        width = 1 << int(cls)
        per_row = windows[rows]
        row_of = np.repeat(np.arange(len(rows)), per_row)
        first = np.cumsum(per_row) - per_row
        position = np.arange(len(row_of)) - first[row_of]
        grid = np.full((len(rows), width), _ALL_ONES)
        source = starts[rows][row_of] + position
        grid.ravel()[row_of * width + position] = ((hashes[source] >> shift) << shift) | position.astype(np.uint64)
        grid.sort(axis=1)
        key_parts.append(grid[np.arange(width) < per_row[:, None]])  # each row's real keys, in row order
        doc_parts.append(np.repeat(rows, per_row))
    keys = np.concatenate(key_parts)
    doc = np.concatenate(doc_parts)

    high = keys >> shift
    same = (high[1:] == high[:-1]) & (doc[1:] == doc[:-1])
    if same.any():
        pairs = np.flatnonzero(same)
        a = starts[doc[pairs]] + (keys[pairs] & pos_mask).astype(np.int64)
        b = starts[doc[pairs + 1]] + (keys[pairs + 1] & pos_mask).astype(np.int64)
        grams = np.lib.stride_tricks.sliding_window_view(text, n)
        if not (grams[a] == grams[b]).all():
            return None
    bounds = np.flatnonzero(np.concatenate(([True], ~same, [True])))
    counts = np.diff(bounds)
    group_doc = doc[bounds[:-1]]
    distinct = np.bincount(group_doc, minlength=docs)
    repeated_groups = counts > 1
    repeated = np.bincount(group_doc[repeated_groups], minlength=docs)
    k = np.minimum(np.floor(np.sqrt(distinct)).astype(np.int64), repeated)
    # the k largest counts are all > 1 (k <= repeated): rank the repeated groups of each document
    rep_counts, rep_doc = counts[repeated_groups], group_doc[repeated_groups]
    order = np.lexsort((-rep_counts, rep_doc))
    rep_counts, rep_doc = rep_counts[order], rep_doc[order]
    rank = np.arange(len(rep_doc)) - (np.cumsum(repeated) - repeated)[rep_doc]
    taken = rank < k[rep_doc]
    top = np.bincount(rep_doc[taken], weights=rep_counts[taken], minlength=docs)
    has_top = k > 0
    ratios[has_top] = top[has_top] / windows[has_top]
    return ratios


@register
class CharacterRepetitionFilter(Filter):
    name = "character_repetition_filter"
    summary = "Share of character n-grams taken by the most repeated ones (top sqrt(#distinct))."
    Params = CharRepetitionParams
    stat_key = "char_rep_ratio"
    bounds = ("min_ratio", "max_ratio")

    def compute_stat(self, doc: Doc) -> float:
        n = self.params.rep_len
        if len(doc.text) < n:
            return 0.0
        counts = char_ngram_counts(doc.codepoints, n)
        repeated = int(np.count_nonzero(counts > 1))
        k = min(int(math.sqrt(len(counts))), repeated)
        total = int(counts.sum())
        if k == 0:
            return 0.0
        top = np.partition(counts, len(counts) - k)[len(counts) - k :]
        return int(top.sum()) / total

    #: code points per batched call: enough to amortise numpy's per-call costs, small enough that the
    #: call's arrays stay in cache (a 1,024-document batch of source code holds millions of n-grams)
    BATCH_CODEPOINTS = 1 << 18

    def compute_stats(self, docs: list[Doc]) -> list[float]:
        out: list[float] = []
        start = size = 0
        for end, doc in enumerate(docs):
            size += len(doc.codepoints)
            if size >= self.BATCH_CODEPOINTS or end == len(docs) - 1:
                group = docs[start : end + 1]
                ratios = char_repetition_ratios([d.codepoints for d in group], self.params.rep_len)
                if ratios is None:  # a hash collision (never seen in practice): the per-document path
                    out.extend(self.compute_stat(d) for d in group)
                else:
                    out.extend(ratios.tolist())
                start, size = end + 1, 0
        return out


class WordsParams(FilterParams):
    lang: str = "en"
    tokenization: bool = False
    model_path: str | None = None
    """Steel extension: the sentencepiece model used when `tokenization` is true (Data-Juicer downloads
    `{lang}.sp.model`; Steel never downloads at run time)."""

    @model_validator(mode="after")
    def _model_when_tokenizing(self):
        if self.tokenization and not self.model_path:
            raise ValueError("parameter 'model_path': tokenization: true needs model_path (a sentencepiece .model file)")
        return self


class WordsNumParams(WordsParams):
    min_num: int = 10
    max_num: int = _MAX


class _SentencePieceWords:
    """Words from a sentencepiece model instead of whitespace, for `tokenization: true`."""

    def setup(self) -> None:
        if self.params.tokenization:
            import sentencepiece

            self._sp = sentencepiece.SentencePieceProcessor(model_file=self.params.model_path)

    def _words(self, doc: Doc, lower: bool) -> list[str]:
        if not self.params.tokenization:
            return doc.refined_words_lower if lower else doc.refined_words
        from operators.doc import refine_words

        return refine_words(self._sp.encode_as_pieces(doc.text), lower_case=lower)


@register
class WordsNumFilter(_SentencePieceWords, Filter):
    name = "words_num_filter"
    summary = "Number of words (whitespace split, special characters stripped)."
    Params = WordsNumParams
    stat_key = "num_words"
    bounds = ("min_num", "max_num")

    def compute_stat(self, doc: Doc) -> int:
        return len(self._words(doc, lower=False))

    def compute_stats(self, docs: list[Doc]) -> list[int]:
        if self.params.tokenization or not docs:
            return super().compute_stats(docs)
        return count_refined_words([d.codepoints for d in docs]).tolist()


_WORD_SEPARATOR_CODES = np.array([ord(c) for c in WORD_SEPARATORS], dtype=np.uint32)


def count_refined_words(codepoint_arrays: list[np.ndarray]) -> np.ndarray:
    """`len(Doc.refined_words)` for many documents in one pass over their code points: a word (a run
    between spaces, newlines and tabs) survives the special-character stripping exactly when one of its
    characters is not special, so only the runs holding such a character are counted."""
    docs = len(codepoint_arrays)
    # a separator after every document keeps words from running across documents
    gap = _WORD_SEPARATOR_CODES[:1]
    text = np.concatenate([part for cps in codepoint_arrays for part in (cps, gap)])
    separator = np.zeros(len(text), dtype=bool)
    for code in _WORD_SEPARATOR_CODES:
        separator |= text == code
    is_start = ~separator & np.concatenate(([True], separator[:-1]))
    starts = np.flatnonzero(is_start)
    content = ~separator & ~_codepoint_table("special")[text]
    word_of = np.cumsum(is_start) - 1
    has_content = np.zeros(len(starts), dtype=bool)
    has_content[word_of[content]] = True
    doc_ends = np.cumsum(np.fromiter(map(len, codepoint_arrays), dtype=np.int64, count=docs) + 1)
    doc_of_word = np.searchsorted(doc_ends, starts, side="right")
    return np.bincount(doc_of_word[has_content], minlength=docs)


class WordRepetitionParams(WordsParams):
    rep_len: PositiveInt = 10
    min_ratio: float = 0.0
    max_ratio: float = 0.5


@register
class WordRepetitionFilter(_SentencePieceWords, Filter):
    name = "word_repetition_filter"
    summary = "Share of word n-grams that occur more than once (lower-cased words)."
    Params = WordRepetitionParams
    stat_key = "word_rep_ratio"
    bounds = ("min_ratio", "max_ratio")

    def compute_stat(self, doc: Doc) -> float:
        words = self._words(doc, lower=True)
        n = self.params.rep_len
        if len(words) < n:
            return 0.0
        # Words never contain a space, so a tuple of words is equal exactly when the space-joined n-grams are.
        counts = Counter(zip(*(words[i:] for i in range(n)))).values()
        total = sum(counts)
        return sum(c for c in counts if c > 1) / total
