"""A document view that computes shared intermediates once (lines, words, code points) for all filters.

Filters that need the same intermediate (lines for average/maximum line length, words for words_num and
word_repetition) read it from here, so a recipe pays for each intermediate once per document. This is
the operator fusion of DESIGN.md: same decisions, less work.
"""

from __future__ import annotations

import numpy as np

from operators.charsets import single_char_specials

WORD_SEPARATORS = (" ", "\n", "\t")
"""What separates words when there is no tokenizer (Data-Juicer's split): nothing else, not even other spaces."""
_TO_SPACE = str.maketrans({c: " " for c in WORD_SEPARATORS if c != " "})


def split_words(text: str) -> list[str]:
    """Data-Juicer's word split without a tokenizer: on `WORD_SEPARATORS` only; empties dropped."""
    return [w for w in text.translate(_TO_SPACE).split(" ") if w]


def strip_chars(word: str, chars: frozenset[str]) -> str:
    """Strip members of `chars` from both ends (a set, not str.strip's string, because the emoji make the
    set large)."""
    if not word or (word[0] not in chars and word[-1] not in chars):
        return word
    begin, end = 0, len(word)
    while begin < end and word[begin] in chars:
        begin += 1
    while end > begin and word[end - 1] in chars:
        end -= 1
    return word[begin:end]


def refine_words(words: list[str], lower_case: bool = False) -> list[str]:
    """Data-Juicer's `words_refinement` with the special characters: optional lower-casing first, then
    stripping; words that become empty are dropped."""
    specials = single_char_specials()
    if lower_case:
        words = [w.lower() for w in words]
    out = []
    for w in words:
        w = strip_chars(w, specials)
        if w:
            out.append(w)
    return out


class Doc:
    """One document's text plus lazily computed intermediates shared between filters."""

    __slots__ = ("text", "_lines", "_words", "_refined", "_refined_lower", "_codepoints")

    def __init__(self, text: str):
        self.text = text
        self._lines = None
        self._words = None
        self._refined = None
        self._refined_lower = None
        self._codepoints = None

    @property
    def lines(self) -> list[str]:
        if self._lines is None:
            self._lines = self.text.splitlines()
        return self._lines

    @property
    def words(self) -> list[str]:
        if self._words is None:
            self._words = split_words(self.text)
        return self._words

    @property
    def refined_words(self) -> list[str]:
        if self._refined is None:
            self._refined = refine_words(self.words)
        return self._refined

    @property
    def refined_words_lower(self) -> list[str]:
        if self._refined_lower is None:
            self._refined_lower = refine_words(self.words, lower_case=True)
        return self._refined_lower

    @property
    def codepoints(self) -> np.ndarray:
        """The text as a uint32 array of code points (lone surrogates kept as themselves)."""
        if self._codepoints is None:
            self._codepoints = np.frombuffer(self.text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        return self._codepoints
