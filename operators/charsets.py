"""Character sets that decide operator output, as Data-Juicer 1.6.1 defines them.

These are compatibility data, not tuning knobs: changing a single code point changes which documents
`special_characters_filter`, `words_num_filter` and `word_repetition_filter` keep.
"""

from __future__ import annotations

import string
from functools import lru_cache

# The ~190 "other" special characters of Data-Juicer's list, written as escapes so that invisible and
# control characters survive editors. It includes C1 controls, full-width punctuation, some katakana and,
# oddly, the CJK ideographs 一 (U+4E00), 上 (U+4E0A) and 士 (U+58EB).
_OTHER_SPECIAL = (
    " \x81\x82\x83\x84\x85\x91\x92\x93\x95\x96\x97\x98\x99\x9c\x9d\xa1\xa2\xa3\xa4\xa5\xa6\xa7\xa8\xa9\xaa\xab"
    "\xad\xae\xaf\xb0\xb1\xb2\xb3\xb4\xb7\xb8\xb9\xba\xbb\xbc\xbd\xbe\xbf\xd7\xf7\xf8\u0131\u026a\u02ba\u02bb"
    "\u02bc\u02c8\u02cc\u02d0\u02d8\u02da\u02dc\u03c0\u0413\u060c\u0647\u066a\u066c\u06e9\u093e\u0940\u0947"
    "\u094d\u097d\u09be\u0e51\u2002\u2003\u2005\u2008\u2009\u200a\u200b\u2010\u2011\u2013\u2014\u2015\u2016"
    "\u2018\u2019\u201a\u201c\u201d\u201e\u201f\u2020\u2022\u2024\u2026\u202f\u2030\u2032\u2033\u2039\u203a"
    "\u203f\u2043\u2044\u20a8\u20aa\u20ac\u2103\u2122\u2190\u2191\u2192\u2193\u21d3\u2206\u2208\u2212\u221a"
    "\u221e\u221f\u223c\u2248\u2256\u2264\u2265\u2295\u22c5\u2550\u25a0\u25ac\u25b2\u25b4\u25b7\u25ba\u25bb"
    "\u25bc\u25c6\u25cf\u25e6\u2605\u2606\u261b\u263b\u2661\u2665\u266b\u2713\u2726\u2731\u2756\u27a4\u27a9"
    "\u2800\u3000\u3001\u3002\u300a\u300b\u300c\u300d\u3010\u3011\u309c\u30b7\u30c3\u30c4\u30f3\u30fb\u30fc"
    "\u4e00\u4e0a\u58eb\ufd3e\ufd3f\ufeff\uff01\uff08\uff09\uff0c\uff0e\uff11\uff1a\uff1b\uff1f\uff3e\uff5e"
    "\ufffc\ufffd"
)

# What whitespace_normalization_mapper turns into a plain space (U+0085 is deliberately absent, U+0084 present).
VARIOUS_WHITESPACES = frozenset(
    " \t\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\xa0\u202f\u205f\u3000"
    "\u200b\u200c\u200d\u2060\ufffc\x84"
)


@lru_cache(maxsize=1)
def special_characters() -> frozenset[str]:
    """ASCII punctuation, digits and whitespace, the fixed list above, and every emoji the `emoji`
    package knows (multi-code-point emoji can never match a single character, but they are members)."""
    import emoji  # the emoji version changes the set: pinned in pyproject

    chars = set(string.punctuation + string.digits + string.whitespace + _OTHER_SPECIAL)
    chars.update(emoji.EMOJI_DATA.keys())
    return frozenset(chars)


@lru_cache(maxsize=1)
def single_char_specials() -> frozenset[str]:
    """The members of `special_characters()` that are one code point: the only ones a per-character
    test can ever match. Smaller set, same decisions."""
    return frozenset(c for c in special_characters() if len(c) == 1)
