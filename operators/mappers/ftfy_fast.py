"""`fix_text_fast`: the output of `ftfy.fix_text(text, normalization=form)` (ftfy 6.3.1, default settings),
computed without ftfy's pure-Python machinery wherever that machinery provably has nothing to do.

How ftfy 6.3.1 works (`ftfy/__init__.py`): `fix_text` cuts the text into segments that end after each `\\n`
(or every `max_decode_length` = 1,000,000 characters inside a longer line) and runs `fix_and_explain` on each.
HTML unescaping is on ("auto") for a segment only while no `<` has been seen in it or any earlier segment.
`fix_and_explain` repeats one round until the text stops changing:

  1. `unescape_html` (when on): replace `&name;` / `&#...;` matches of `HTML_ENTITY_RE` by their characters;
  2. `fix_encoding`: a no-op when the segment is ASCII or `is_bad(segment)` is false (BADNESS_RE finds nothing);
  3. `fix_c1_controls`, `fix_latin_ligatures`, `fix_character_width`, `uncurl_quotes`, `fix_line_breaks`,
     `fix_surrogates`, `remove_terminal_escapes`, `remove_control_chars`: character maps, plus `\\r\\n`
     folding, surrogate pairing and ANSI escapes (the last two need a surrogate or an ESC character);
  4. `unicodedata.normalize(form)`.

So for a segment `s` where (1) changes nothing, (2) is a no-op, and no surrogate / ESC occurs, round one gives
`t = normalize(controls(line_breaks(char_map(s))))`, computed here with C-speed string operations. Round two
returns `t` unchanged (ftfy's answer is then `t`) when (1) changes nothing in `t`, `is_bad(t)` is false, and `t`
holds no character that any step of (3) acts on (normalisation is idempotent). Both conditions are decided
exactly, per segment, with cheap scans:

* every match of BADNESS_RE contains at least one character of `_GATE_CHARS` (a hitting set of its 37
  alternatives, chosen to avoid characters common in Chinese and English text: no curly quotes, dashes,
  ellipsis, middle dot, degree sign, multiplication sign, Greek or Cyrillic lower case) and is at most
  `_MAX_BAD_LEN` characters long, so `is_bad` needs only a BADNESS_RE search in a small window around each
  occurrence of a gate character (none at all in most documents);
* `unescape_html` changes a segment iff one of its `HTML_ENTITY_RE` matches decodes to something else.

Segments that fail a condition go through `ftfy.fix_text` itself, one segment at a time with the same settings
ftfy would use for them, so the result is always ftfy's. tests/operators/test_ftfy_fast.py checks the gate's
hitting-set property against the parsed BADNESS_RE and compares with ftfy on random and real text.
"""

from __future__ import annotations

import re
import unicodedata

import ftfy
from ftfy import chardata, fixes
from ftfy.badness import BADNESS_RE

__all__ = ["fix_text_fast", "FTFY_VERSION"]

FTFY_VERSION = "6.3.1"
_ENABLED = ftfy.__version__ == FTFY_VERSION  # the proofs below are about this version's code only

_MAX_DECODE_LENGTH = ftfy.TextFixerConfig().max_decode_length  # 1,000,000

# A hitting set of BADNESS_RE: each of its alternatives has a mandatory position whose character class lies
# wholly inside this set (checked in the tests by walking the parsed pattern). Members: the C1 controls, the
# "bad" class (¤ ¦ ¨ ¬ ¯ ¸ ª º ƒ ˆ ˇ ˘ ˛ ˜ † ‡ ‰ ⌐ ◊ �), upper- and lower-case accented Latin letters, currency
# (¢ £ ¥ ₧ €), ¹²³ and the other numeric signs except × ± ° µ-alikes that are common, box drawing, and the
# specific letters of the Windows-1251/1253/MacRoman alternatives.
_GATE_CHARS = (
    "\x80-\x9f\xa2-\xa8\xaa\xac\xaf\xb1-\xb3\xb5\xb6\xb8-\xba\xbc-\xbe\xc0-\xd1\xd7-\xd9\xdc\xdd\xdf-\xf1"
    "\xf7\xfc\u0100-\u0107\u010c-\u0113\u0116-\u011b\u011e\u011f\u0122\u0123\u012a\u012b\u012f\u0130\u0136"
    "\u0137\u0139-\u013e\u0141-\u0143\u0145\u0147\u0152\u0153\u0155\u0158\u015a\u015b\u015e-\u0162\u0164"
    "\u0165\u016e\u0170\u0178-\u017e\u0192\u02c6\u02c7\u02d8\u02db\u02dc\u0392\u0393\u039e\u039f\u0402"
    "\u0412\u0413\u0420\u0421\u0490\u0491\u201a\u2020\u2021\u2030\u2044\u20a7\u20ac\u2116\u2202\u2206"
    "\u220f\u2211\u221a\u221e\u2229\u222b\u2248\u2260\u2261\u2264\u2265\u2310\u2502\u250c\u2510\u2518"
    "\u251c\u2524\u252c\u253c\u2550-\u256c\u2580\u2584\u2588\u258c\u2590-\u2593\u25ca\ufb01\ufb02\ufffd"
)
# The longest text one BADNESS_RE alternative can match (`ГўВЂВ.[A-Za-z ]`; checked in the tests).
_MAX_BAD_LEN = 7

# BADNESS_RE with `^` also matching after each newline: a search over a window of a whole document then finds
# at least every match that `is_bad` finds in the window's segment (segments start at 0 or after a newline).
_BAD_ML = re.compile(BADNESS_RE.pattern, BADNESS_RE.flags | re.MULTILINE)

# Characters that always send a segment to ftfy: surrogates (fix_surrogates) and ESC (remove_terminal_escapes).
_SPECIAL = "\ud800-\udfff\x1b"
_SUSPECT_RE = re.compile(f"[{_GATE_CHARS}{_SPECIAL}]")
_SPECIAL_RE = re.compile(f"[{_SPECIAL}]")

_ENTITY_RE = chardata.HTML_ENTITY_RE  # r"&#?[0-9A-Za-z]{1,24};", never spans a newline


def _build_tables() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Per-character maps equal to ftfy's step-(3) fixers, composed in ftfy's order.

    `char_map`: fix_latin_ligatures, then fix_character_width, then uncurl_quotes (all per character).
    `controls`: remove_control_chars. `combined`: char_map, then U+2028/U+2029 -> newline, then controls; it equals
    char_map + fix_line_breaks + remove_control_chars on text without `\\r` (and without U+0085, a C1 control).
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
        assert not any(key in out for out in table.values() for key in table), "table outputs overlap its keys"
    assert not any(c in out for out in char_map.values() for c in "\r\n\u2028\u2029\x85"), "char_map makes breaks"
    return char_map, controls, combined


_CHAR_MAP, _CONTROLS, _COMBINED = _build_tables()


def _class_of(chars) -> str:
    return "".join(re.escape(c) for c in sorted(chars))


_CHAR_MAP_RE = re.compile(f"[{_class_of(_CHAR_MAP)}]")
_CONTROLS_RE = re.compile(f"[{_class_of(_CONTROLS)}]")
_COMBINED_RE = re.compile(f"[{_class_of(_COMBINED)}]")

# Characters some step of (3) would change: C1 controls, the maps above, line-break characters, surrogates.
_ACTED_ON = f"\x80-\x9f{_class_of(_COMBINED)}\r\u2028\u2029\ud800-\udfff"
_POST_RE = re.compile(f"[{_ACTED_ON}{_GATE_CHARS}]")
_ACTED_ON_RE = re.compile(f"[{_ACTED_ON}]")


def _replace_each(text: str, pattern: re.Pattern[str], table: dict[str, str]) -> str:
    """`text.translate(table)`, done as one str.replace per distinct key present (several times faster)."""
    for char in set(pattern.findall(text)):
        text = text.replace(char, table[char])
    return text


def _round_one(text: str, form: str | None) -> str:
    """Steps (3) and (4) of one ftfy round, for text with no C1 control, surrogate or ESC character."""
    if "\r" in text:
        text = _replace_each(text, _CHAR_MAP_RE, _CHAR_MAP)
        text = fixes.fix_line_breaks(text)
        text = _replace_each(text, _CONTROLS_RE, _CONTROLS)
    else:
        text = _replace_each(text, _COMBINED_RE, _COMBINED)
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


def _is_bad_near(text: str, pos: int, lo: int, hi: int) -> bool:
    """Whether BADNESS_RE matches text[lo:hi] somewhere within reach of position `pos`."""
    return _BAD_ML.search(text, max(lo, pos - _MAX_BAD_LEN + 1), min(hi, pos + _MAX_BAD_LEN)) is not None


def _round_two_is_noop(text: str, unescape: bool) -> bool:
    """Sufficient test that ftfy's second round leaves `text` (the output of round one) unchanged.

    `text` may span several segments; then BADNESS_RE is searched in windows that ignore segment limits, which
    can only find more, so a True answer is safe for every segment.
    """
    n = len(text)
    for match in _POST_RE.finditer(text):
        if _ACTED_ON_RE.match(match.group()):
            return False
        if _is_bad_near(text, match.start(), 0, n):
            return False
    return not (unescape and _entity_changes(text))


class _Fixer:
    """The per-call state: the text, where unescaping stops, the normalisation form."""

    __slots__ = ("text", "form", "cutoff", "configs")

    def __init__(self, text: str, form: str | None, cutoff: int) -> None:
        self.text = text
        self.form = form
        self.cutoff = cutoff  # segments starting before this offset have unescape_html on
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
        """The segments for which ftfy's first round is not steps (3)-(4) alone, as (start, end) offsets."""
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
            # The window lies inside the segment, and `^` of _BAD_ML matches there only at the segment's start,
            # so a match is exactly a match of is_bad(segment).
            if _SPECIAL_RE.match(match.group()) or _is_bad_near(text, pos, seg_start, seg_end):
                slow[seg_start] = seg_end
                seg_slow = True
        if self.cutoff and "&" in text:
            for match in _ENTITY_RE.finditer(text, 0, self.cutoff):
                entity = match.group()
                if fixes.unescape_html(entity) != entity:
                    pos = match.start()
                    seg_start = text.rfind("\n", 0, pos) + 1
                    slow[seg_start] = text.find("\n", pos) + 1 or n
        return sorted(slow.items())

    def fast_run(self, start: int, end: int) -> str:
        """Fix text[start:end], whole segments whose first round is steps (3)-(4) alone."""
        unescape = start < self.cutoff  # runs never straddle the cutoff
        run = self.text[start:end]
        fixed = _round_one(run, self.form)
        if _round_two_is_noop(fixed, unescape):
            return fixed
        # Rare: decide segment by segment, exactly.
        out = []
        pos = start
        while pos < end:
            seg_end = self.text.find("\n", pos, end) + 1 or end
            fixed = _round_one(self.text[pos:seg_end], self.form)
            if _round_two_is_noop(fixed, unescape):
                out.append(fixed)
            else:
                out.append(self.ftfy_segment(pos, seg_end))
            pos = seg_end
        return "".join(out)


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
    if not _ENABLED or (len(text) > _MAX_DECODE_LENGTH and _has_long_segment(text)):
        return ftfy.fix_text(text, normalization=normalization)
    if not text:
        return ""
    n = len(text)
    lt = text.find("<")
    cutoff = n if lt < 0 else text.rfind("\n", 0, lt) + 1

    if not _SUSPECT_RE.search(text) and not (cutoff and "&" in text and _entity_changes(text, 0, cutoff)):
        # The common case: no segment needs ftfy's first round beyond steps (3)-(4).
        if cutoff in (0, n):
            fixed = _round_one(text, normalization)
            if _round_two_is_noop(fixed, cutoff == n):
                return fixed
        slow: list[tuple[int, int]] = []
    else:
        slow = None  # type: ignore[assignment]

    fixer = _Fixer(text, normalization, cutoff)
    if slow is None:
        slow = fixer.slow_segments()
    out = []
    pos = 0
    for start, end in [*slow, (n, n)]:
        if pos < start:  # a run of fast segments, cut at the cutoff
            if pos < cutoff < start:
                out.append(fixer.fast_run(pos, cutoff))
                out.append(fixer.fast_run(cutoff, start))
            else:
                out.append(fixer.fast_run(pos, start))
        if start < end:
            out.append(fixer.ftfy_segment(start, end))
        pos = end
    return "".join(out)
