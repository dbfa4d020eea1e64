"""`fix_text_fast`: the output of `ftfy.fix_text(text, normalization=form)` (ftfy 6.3.1, default settings),
computed without ftfy's pure-Python machinery wherever that machinery provably has nothing to do.

How ftfy 6.3.1 works (`ftfy/__init__.py`): `fix_text` cuts the text into segments that end after each `\\n`
(or every `max_decode_length` = 1,000,000 characters inside a longer line) and runs `fix_and_explain` on each.
HTML unescaping is on ("auto") for a segment only while no `<` has been seen in it or in an earlier segment.
`fix_and_explain` repeats one round until the text stops changing:

  1. `unescape_html` (when on): replace the `&name;` / `&#...;` matches of `HTML_ENTITY_RE` it knows;
  2. `fix_encoding`: a no-op when the segment is ASCII or `is_bad(segment)` is false (BADNESS_RE finds nothing);
  3. `fix_c1_controls`, `fix_latin_ligatures`, `fix_character_width`, `uncurl_quotes`, `fix_line_breaks`,
     `fix_surrogates`, `remove_terminal_escapes`, `remove_control_chars`: character maps, plus `\\r\\n`
     folding, surrogate pairing and ANSI escapes (the last two need a surrogate or an ESC character);
  4. `unicodedata.normalize(form)`.

For a segment `s` where (1) changes nothing, (2) is a no-op and no surrogate or ESC occurs, round one gives
`t = normalize(controls(line_breaks(char_map(s))))`, computed here with C-speed string operations (one
`str.replace` per distinct mapped character present). Round two returns `t` unchanged, so ftfy's answer is `t`,
when (1) changes nothing in `t`, `is_bad(t)` is false and `t` holds no character that a step of (3) acts on
(normalisation is idempotent). Both rounds' conditions are decided exactly, per segment, with cheap scans:

* every match of BADNESS_RE contains a character of `_GATE_CHARS` (a hitting set of its 37 alternatives that
  leaves out what is common in Chinese and English text: curly quotes, dashes, ellipsis, middle dot, °, Greek
  and Cyrillic lower case, full-width punctuation) and is at most `_MAX_BAD_LEN` characters long. So `is_bad` only needs a
  BADNESS_RE search in a small window around each gate character, of which most documents have none; and the
  search is skipped when the window has fewer than two characters of `_BAD_CLASS_CHARS` (all non-ASCII
  characters of BADNESS_RE) and no `_ONE_CHAR_BAD` character, as each alternative needs two such characters
  except those built on a C1 control, Â, Ã, Œ or œ;
* `unescape_html` changes a segment iff one of its `HTML_ENTITY_RE` matches decodes to something else.

Segments that fail a condition go through `ftfy.fix_text` itself, one segment at a time with the settings ftfy
would use for them, so the result is always ftfy's. tests/operators/test_ftfy_fast.py checks the character sets
and lengths above against the parsed BADNESS_RE and compares with ftfy on random and on real text.
"""

from __future__ import annotations

import re
import unicodedata

import ftfy
from ftfy import chardata, fixes
from ftfy.badness import BADNESS_RE

__all__ = ["fix_text_fast", "FTFY_VERSION"]

FTFY_VERSION = "6.3.1"
_ENABLED = ftfy.__version__ == FTFY_VERSION  # what follows is proven about this version's code only

_MAX_DECODE_LENGTH = ftfy.TextFixerConfig().max_decode_length  # 1,000,000
_FORMS = (None, "NFC", "NFD", "NFKC", "NFKD")

# A hitting set of BADNESS_RE: each alternative has a mandatory position whose character class lies wholly inside
# it. Members: the C1 controls, the "bad" class (¤ ¦ ¨ ¬ ¯ ¸ ª º ƒ ˆ ˇ ˘ ˛ ˜ † ‡ ‰ ⌐ ◊ �), accented Latin
# letters, currency (¢ £ ¥ ₧ €), the numeric signs (± × ÷ µ ¹²³ ¼½¾ ≈ ≠ ≤ ≥ √ ∞ ...), box drawing, ﬁ ﬂ, and the
# letters that the Windows-1251/1253/MacRoman alternatives start with.
_GATE_CHARS = (
    "\x80-\x9f\xa2-\xa8\xaa\xac\xaf\xb1-\xb3\xb5\xb6\xb8-\xba\xbc-\xbe\xc0-\xd1\xd7-\xd9\xdc\xdd\xdf-\xf1"
    "\xf7\xfc\u0100-\u0107\u010c-\u0113\u0116-\u011b\u011e\u011f\u0122\u0123\u012a\u012b\u012f\u0130\u0136"
    "\u0137\u0139-\u013e\u0141-\u0143\u0145\u0147\u0152\u0153\u0155\u0158\u015a\u015b\u015e-\u0162\u0164"
    "\u0165\u016e\u0170\u0178-\u017e\u0192\u02c6\u02c7\u02d8\u02db\u02dc\u0392\u0393\u039e\u039f\u0402"
    "\u0412\u0413\u0420\u0421\u0490\u0491\u201a\u2020\u2021\u2030\u2044\u20a7\u20ac\u2116\u2202\u2206"
    "\u220f\u2211\u221a\u221e\u2229\u222b\u2248\u2260\u2261\u2264\u2265\u2310\u2502\u250c\u2510\u2518"
    "\u251c\u2524\u252c\u253c\u2550-\u256c\u2580\u2584\u2588\u258c\u2590-\u2593\u25ca\ufb01\ufb02\ufffd"
)
# Every non-ASCII character that occurs in a character class or literal of BADNESS_RE.
_BAD_CLASS_CHARS = (
    "\x80-\xfc\u0100-\u0107\u010c-\u0113\u0116-\u011b\u011e\u011f\u0122\u0123\u012a\u012b\u012f\u0130"
    "\u0136\u0137\u0139-\u013e\u0141-\u0143\u0145\u0147\u014c\u0150\u0152\u0153\u0155\u0158\u015a\u015b"
    "\u015e-\u0162\u0164\u0165\u016a\u016e\u0170\u0172\u0178-\u017e\u0192\u02c6\u02c7\u02d8\u02db-\u02dd"
    "\u0384-\u0386\u0388-\u038a\u038c\u038e\u038f\u0391-\u03c9\u0401-\u045f\u0490\u0491\u2013-\u2015"
    "\u2018-\u201a\u201c-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u2044\u20a7\u20ac\u2116\u2122\u2202"
    "\u2206\u220f\u2211\u221a\u221e\u2229\u222b\u2248\u2260\u2261\u2264\u2265\u2310\u2502\u250c\u2510"
    "\u2518\u251c\u2524\u252c\u253c\u2550-\u256c\u2580\u2584\u2588\u258c\u2590-\u2593\u25ca\uf8ff\ufb01"
    "\ufb02\ufffd"
)
# The alternatives with fewer than two all-non-ASCII positions need one of these characters.
_ONE_CHAR_BAD = frozenset("\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f"
                          "\x90\x91\x92\x93\x94\x95\x96\x97\x98\x99\x9a\x9b\x9c\x9d\x9e\x9f\xc2\xc3\u0152\u0153")
# The longest text one BADNESS_RE alternative can match (`ГўВЂВ.[A-Za-z ]`).
_MAX_BAD_LEN = 7

# BADNESS_RE with `^` also matching after each newline: searched over a window of a longer text, it finds at least
# every match that `is_bad` finds in the part of the window that lies in one segment (segments start at 0 or
# after a newline). BADNESS_RE has no lookaround, `$` or `\\b`, so cutting the text at the window's edges adds no
# match either.
_BAD_ML = re.compile(BADNESS_RE.pattern, BADNESS_RE.flags | re.MULTILINE)
_BAD_CLASS_RE = re.compile(f"[{_BAD_CLASS_CHARS}]")

# Characters that always send their segment to ftfy: surrogates (fix_surrogates) and ESC (terminal escapes).
_SPECIAL = "\ud800-\udfff\x1b"
_SUSPECT_RE = re.compile(f"[{_GATE_CHARS}{_SPECIAL}]")
_SPECIAL_RE = re.compile(f"[{_SPECIAL}]")

_ENTITY_RE = chardata.HTML_ENTITY_RE  # r"&#?[0-9A-Za-z]{1,24};", never spans a newline


def _build_tables() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Per-character maps equal to ftfy's step-(3) fixers, composed in ftfy's order.

    `char_map`: fix_latin_ligatures, then fix_character_width, then uncurl_quotes (all per character).
    `controls`: remove_control_chars. `combined`: char_map, then U+2028/U+2029 -> newline, then controls; on text
    without `\\r` (and without U+0085, a C1 control) it equals char_map, fix_line_breaks, remove_control_chars.
    """

    def uncurl(s: str) -> str:
        return chardata.SINGLE_QUOTE_RE.sub("'", chardata.DOUBLE_QUOTE_RE.sub('"', s))

    keys = set(chardata.LIGATURES) | set(chardata.WIDTH_MAP) | {0x02BC} | set(range(0x2018, 0x2020))
    char_map = {}
    for code in sorted(keys):
        char = chr(code)
        out = uncurl(char.translate(chardata.LIGATURES).translate(chardata.WIDTH_MAP))
        if out != char:
            char_map[char] = out
    controls = {chr(code): "" for code in chardata.CONTROL_CHARS}
    combined = {**char_map, "\u2028": "\n", "\u2029": "\n", **controls}
    for table in (char_map, controls, combined):
        # Replacing one distinct character at a time equals str.translate only if no output holds a key.
        if any(key in out for out in table.values() for key in table):
            raise AssertionError("a map's output holds one of its keys")
    if any(c in out for out in char_map.values() for c in "\r\n\u2028\u2029\x85"):
        raise AssertionError("char_map makes line breaks")
    return char_map, controls, combined


_CHAR_MAP, _CONTROLS, _COMBINED = _build_tables()


def _class_of(chars) -> str:
    return "".join(re.escape(c) for c in sorted(chars))


# Characters that a step of (3) would change: C1 controls, the maps' keys, line-break characters, surrogates.
_ACTED_ON = f"\x80-\x9f{_class_of(_COMBINED)}\r\u2028\u2029\ud800-\udfff"
_ACTED_ON_RE = re.compile(f"[{_ACTED_ON}]")
_POST_RE = re.compile(f"[{_ACTED_ON}{_GATE_CHARS}]")

# One pass over a text finds both what sends segments to the careful path and which map keys occur.
_UNION_RE = re.compile(f"[{_GATE_CHARS}{_SPECIAL}{_class_of(_COMBINED)}]")
_SUSPECT_SET = frozenset(chr(c) for c in range(0x10000) if _SUSPECT_RE.match(chr(c)))  # all in the BMP
_COMBINED_KEYS = frozenset(_COMBINED)
# Map keys whose output holds a gate character or one that step (3) acts on (￠ ￡ ￢ ￤ ￥ ￨ Ǆ ǅ ǆ).
_MAKES_POST = frozenset(key for key, out in _COMBINED.items() if _POST_RE.search(out))
_ASCII_CONTROLS = {ord(key): None for key in _CONTROLS}


def _round_one(text: str, form: str | None, keys) -> str:
    """Steps (3) and (4) of one ftfy round, for text with no C1 control, surrogate or ESC character.

    `keys`: a superset of the map keys that occur in `text`.
    """
    if "\r" in text:
        for char in keys:
            if char in _CHAR_MAP:
                text = text.replace(char, _CHAR_MAP[char])
        text = fixes.fix_line_breaks(text)
        for char in keys:
            if char in _CONTROLS:
                text = text.replace(char, "")
    else:
        for char in keys:
            text = text.replace(char, _COMBINED[char])
    if form is not None:
        text = unicodedata.normalize(form, text)
    return text


def _entity_changes(text: str, start: int = 0, end: int | None = None) -> bool:
    """Whether ftfy's unescape_html would change text[start:end] (a whole number of segments)."""
    if "&" not in text:
        return False
    for match in _ENTITY_RE.finditer(text, start, len(text) if end is None else end):
        entity = match.group()
        if fixes.unescape_html(entity) != entity:
            return True
    return False


def _bad_near(text: str, pos: int, lo: int, hi: int) -> bool:
    """Whether BADNESS_RE matches text[lo:hi] at a place that includes position `pos` (or, rarely, near it)."""
    start = max(lo, pos - _MAX_BAD_LEN + 1)
    end = min(hi, pos + _MAX_BAD_LEN)
    if text[pos] not in _ONE_CHAR_BAD and len(_BAD_CLASS_RE.findall(text, start, end)) < 2:
        return False
    return _BAD_ML.search(text, start, end) is not None


def _round_two_is_noop(text: str, unescape: bool) -> bool:
    """Sufficient test that ftfy's second round leaves `text` (the output of round one) unchanged.

    `text` may span several segments: the BADNESS_RE windows then ignore segment limits, which can only find
    more, so a True answer holds for every segment.
    """
    n = len(text)
    for match in _POST_RE.finditer(text):
        if _ACTED_ON_RE.match(match.group()) or _bad_near(text, match.start(), 0, n):
            return False
    return not (unescape and _entity_changes(text))


class _Fixer:
    """The segment-by-segment path: ftfy for the segments that need it, runs of the others at once."""

    __slots__ = ("text", "form", "cutoff", "keys", "configs")

    def __init__(self, text: str, form: str | None, cutoff: int, keys) -> None:
        self.text = text
        self.form = form
        self.cutoff = cutoff  # segments that start before this offset have unescape_html on
        self.keys = keys  # the map keys that occur in text
        self.configs: dict[bool, ftfy.TextFixerConfig] = {}

    def ftfy_segment(self, start: int, end: int) -> str:
        unescape = start < self.cutoff
        config = self.configs.get(unescape)
        if config is None:
            config = ftfy.TextFixerConfig(
                unescape_html="auto" if unescape else False, normalization=self.form, explain=False
            )
            self.configs[unescape] = config
        return ftfy.fix_text(self.text[start:end], config)

    def slow_segments(self) -> list[tuple[int, int]]:
        """The segments for which ftfy's first round is more than steps (3)-(4), as (start, end) offsets."""
        text = self.text
        n = len(text)
        slow: dict[int, int] = {}
        seg_start = seg_end = -1
        seg_slow = False
        for match in _SUSPECT_RE.finditer(text):
            pos = match.start()
            if pos >= seg_end:  # a new segment
                seg_start = text.rfind("\n", 0, pos) + 1
                seg_end = text.find("\n", pos) + 1 or n
                seg_slow = seg_start in slow
            if seg_slow:
                continue
            # The window lies inside the segment, where `^` of _BAD_ML matches only at the segment's start, so
            # a match in it is exactly a match of is_bad(segment).
            if _SPECIAL_RE.match(match.group()) or _bad_near(text, pos, seg_start, seg_end):
                slow[seg_start] = seg_end
                seg_slow = True
        if self.cutoff and "&" in text:
            for match in _ENTITY_RE.finditer(text, 0, self.cutoff):
                entity = match.group()
                if fixes.unescape_html(entity) != entity:
                    pos = match.start()
                    slow[text.rfind("\n", 0, pos) + 1] = text.find("\n", pos) + 1 or n
        return sorted(slow.items())

    def fast_run(self, start: int, end: int) -> str:
        """Fix text[start:end]: whole segments whose first round is steps (3)-(4), on one side of the cutoff."""
        unescape = start < self.cutoff
        fixed = _round_one(self.text[start:end], self.form, self.keys)
        if _round_two_is_noop(fixed, unescape):
            return fixed
        out = []  # rare: decide segment by segment
        pos = start
        while pos < end:
            seg_end = self.text.find("\n", pos, end) + 1 or end
            fixed = _round_one(self.text[pos:seg_end], self.form, self.keys)
            out.append(fixed if _round_two_is_noop(fixed, unescape) else self.ftfy_segment(pos, seg_end))
            pos = seg_end
        return "".join(out)

    def run(self) -> str:
        text, cutoff = self.text, self.cutoff
        n = len(text)
        out = []
        pos = 0
        for start, end in [*self.slow_segments(), (n, n)]:
            if pos < start:  # runs never straddle the cutoff
                if pos < cutoff < start:
                    out.append(self.fast_run(pos, cutoff))
                    out.append(self.fast_run(cutoff, start))
                else:
                    out.append(self.fast_run(pos, start))
            if start < end:
                out.append(self.ftfy_segment(start, end))
            pos = end
        return "".join(out)


def _whole_part(text: str, form: str | None, unescape: bool, keys, is_ascii: bool) -> str | None:
    """ftfy's result for whole segments none of which holds a suspect character, or None if round one changes
    an entity (`unescape`: unescaping is on for all of them) or round two might change something."""
    if unescape and "&" in text and _entity_changes(text):
        return None
    if is_ascii:
        fixed = fixes.fix_line_breaks(text) if "\r" in text else text
        fixed = fixed.translate(_ASCII_CONTROLS)  # ASCII is invariant under every normalisation form
        renormalised = False
    else:
        mapped = _round_one(text, None, keys)
        fixed = mapped if form is None else unicodedata.normalize(form, mapped)
        renormalised = fixed != mapped
    if renormalised or not keys.isdisjoint(_MAKES_POST):
        return fixed if _round_two_is_noop(fixed, unescape) else None
    # No gate character, nothing that step (3) acts on: only a new entity (say from ＆ and ；) can matter.
    if unescape and "&" in fixed and _entity_changes(fixed):
        return None
    return fixed


def _has_long_segment(text: str) -> bool:
    """Whether ftfy would cut some line into pieces of max_decode_length characters."""
    pos = 0
    n = len(text)
    while pos < n:
        end = text.find("\n", pos) + 1 or n
        if end - pos > _MAX_DECODE_LENGTH:
            return True
        pos = end
    return False


def fix_text_fast(text: str, normalization: str | None = "NFC") -> str:
    """Exactly `ftfy.fix_text(text, normalization=normalization)`, with ftfy's other settings at their defaults."""
    if (
        not _ENABLED
        or type(text) is not str
        or normalization not in _FORMS
        or (len(text) > _MAX_DECODE_LENGTH and _has_long_segment(text))
    ):
        return ftfy.fix_text(text, normalization=normalization)
    if not text:
        return ""
    n = len(text)
    lt = text.find("<")
    cutoff = n if lt < 0 else text.rfind("\n", 0, lt) + 1  # start of the first segment that holds a `<`

    is_ascii = text.isascii()
    if is_ascii:
        suspect = "\x1b" in text
        keys = frozenset()  # only controls can occur, and the ASCII path deletes them by str.translate
    else:
        found = set(_UNION_RE.findall(text))
        suspect = not found.isdisjoint(_SUSPECT_SET)
        keys = found & _COMBINED_KEYS

    if not suspect:
        # The common case. Before the cutoff unescaping is on, after it off; all steps work per segment.
        parts = [(text, cutoff == n)] if cutoff in (0, n) else [(text[:cutoff], True), (text[cutoff:], False)]
        out = []
        for part, unescape in parts:
            fixed = _whole_part(part, normalization, unescape, keys, is_ascii)
            if fixed is None:
                break
            out.append(fixed)
        else:
            return "".join(out)

    if is_ascii:
        keys = frozenset(set(_UNION_RE.findall(text)) & _COMBINED_KEYS)
    return _Fixer(text, normalization, cutoff, keys).run()
