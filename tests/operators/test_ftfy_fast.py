"""`fix_text_fast` is `ftfy.fix_text` (6.3.1, default settings): the facts its gate relies on, checked against
ftfy's own pattern and tables, then equality with ftfy on random text, on text built to hit the gate, and on
real documents."""

from __future__ import annotations

import gzip
import json
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

import ftfy
import pytest
from ftfy import fixes
from ftfy.badness import BADNESS_RE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from operators.mappers import ftfy_fast as ff
from operators.mappers.ftfy_fast import fix_text_fast

FORMS = [None, "NFC", "NFD", "NFKC", "NFKD"]
CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"


def chars_of(char_class: str) -> frozenset[str]:
    pattern = re.compile(f"[{char_class}]")
    return frozenset(chr(c) for c in range(0x110000) if pattern.match(chr(c)))


GATE = chars_of(ff._GATE_CHARS)
BAD_CLASS = chars_of(ff._BAD_CLASS_CHARS)


# --- the gate's proof obligations, against the parsed BADNESS_RE ------------------------------------------------


def badness_alternatives():
    """BADNESS_RE's top-level alternatives, each a list of (kind, chars, min_len, max_len) items; `chars` is the
    exact set an item matches, or None where it is not a plain finite set (\\s, [^A-Za-z], ., ^, x?)."""
    import re._constants as c
    import re._parser as parser

    tree = parser.parse(BADNESS_RE.pattern, BADNESS_RE.flags)
    assert len(tree.data) == 1 and tree.data[0][0] is c.BRANCH
    alternatives = []
    for branch in tree.data[0][1][1]:
        items = []
        for op, av in branch.data:
            if op is c.LITERAL:
                items.append(("char", frozenset(chr(av)), 1, 1))
            elif op is c.IN:
                chars: set[str] | None = set()
                for sub_op, sub_av in av:
                    if sub_op is c.LITERAL:
                        chars.add(chr(sub_av))
                    elif sub_op is c.RANGE:
                        chars.update(chr(x) for x in range(sub_av[0], sub_av[1] + 1))
                    else:  # CATEGORY (\s) or NEGATE
                        assert sub_op in (c.CATEGORY, c.NEGATE), sub_op
                        chars = None
                        break
                items.append(("char", frozenset(chars) if chars is not None else None, 1, 1))
            elif op is c.ANY:
                items.append(("char", None, 1, 1))
            elif op is c.MAX_REPEAT:
                low, high, sub = av
                assert len(sub) == 1 and sub[0][0] is c.IN and high == 1, av
                items.append(("optional", None, low, high))
            elif op is c.AT:
                # Only `^`: no `$`, `\b` or lookaround, so cutting a text at a window's edges adds no match.
                assert av is c.AT_BEGINNING, av
                items.append(("anchor", None, 0, 0))
            else:
                raise AssertionError(f"unexpected regex item {op}")
        alternatives.append(items)
    return alternatives


def mandatory_sets(items):
    return [chars for kind, chars, low, _ in items if kind == "char" and low == 1 and chars is not None]


def test_badness_has_the_shape_the_gate_assumes():
    alternatives = badness_alternatives()
    assert len(alternatives) == 37
    assert ftfy.__version__ == ff.FTFY_VERSION and ff._ENABLED


def test_gate_chars_hit_every_badness_alternative():
    for items in badness_alternatives():
        assert any(chars <= GATE for chars in mandatory_sets(items)), items


def test_badness_matches_are_short():
    for items in badness_alternatives():
        assert sum(high for _, _, _, high in items) <= ff._MAX_BAD_LEN


def test_window_screen_is_sound():
    """A match needs two characters of _BAD_CLASS_CHARS, or one of _ONE_CHAR_BAD; gate characters count."""
    assert GATE <= BAD_CLASS
    assert ff._ONE_CHAR_BAD <= BAD_CLASS
    for items in badness_alternatives():
        sets = mandatory_sets(items)
        for chars in sets:
            assert {ch for ch in chars if not ch.isascii()} <= BAD_CLASS
        non_ascii_positions = [chars for chars in sets if not any(ch.isascii() for ch in chars)]
        if len(non_ascii_positions) < 2:
            assert any(chars <= ff._ONE_CHAR_BAD for chars in sets), items


def test_gate_leaves_common_chinese_and_english_punctuation_alone():
    common = "“”‘’—–…·°αβγ，。：；！？（）《》【】、 \u3000éñ×±€£¥"
    assert {ch for ch in common if ch in GATE} == set("éñ×±€£¥")


def test_map_tables_equal_ftfy_fixers():
    for char, out in ff._CHAR_MAP.items():
        assert fixes.uncurl_quotes(fixes.fix_character_width(fixes.fix_latin_ligatures(char))) == out
    assert max(map(ord, ff._COMBINED)) < 0x10000 and max(map(ord, ff._SUSPECT_SET)) < 0x10000
    assert ff._SUSPECT_SET == GATE | chars_of(ff._SPECIAL)
    for code in range(0x10000):  # ftfy's tables hold BMP characters only
        char = chr(code)
        if char in ff._SUSPECT_SET or 0x80 <= code <= 0x9F or char in "\r\x85":
            continue
        expected = fixes.uncurl_quotes(fixes.fix_character_width(fixes.fix_latin_ligatures(char)))
        expected = fixes.remove_control_chars(fixes.fix_line_breaks(expected))
        assert ff._COMBINED.get(char, char) == expected, hex(code)


# --- equality with ftfy ------------------------------------------------------------------------------------------

SPECIAL = sorted(
    set(ff._ONE_CHAR_BAD)
    | set(ff._COMBINED)
    | set("\r\n\u2028\u2029\x85\x1b[31m;&#xX<> \t\xa0\u3000")
    | set("\ud83d\ude00\udc00\ud800")  # surrogates, paired and not
    | set("\u0300\u0301\u0308\u0327\u0338\u1100\u1161\u11a8가中文，。“”‘’—…·×°é")
    | set("aAzZ09.,?!")
)
SPECIAL_SAMPLE = SPECIAL + sorted(GATE) + sorted(BAD_CLASS)

ENCODINGS = [
    "latin-1", "sloppy-windows-1252", "sloppy-windows-1251", "sloppy-windows-1250", "sloppy-windows-1253",
    "sloppy-windows-1254", "sloppy-windows-1257", "iso-8859-2", "macroman", "cp437", "windows-1252",
]
TOKENS = [
    "&amp;", "&lt;", "&gt;", "&nbsp;", "&eacute;", "&EACUTE;", "&#x2019;", "&#8226;", "&#35828;", "&foo;", "&#;",
    "&amp;lt;", "＆ａｍｐ；", "＆ｌｔ；", "\x1b[31m", "\x1b［３１ｍ", "\r\n", "\r", "\n", "<b>", "<", "Ã ", " Ã ",
    "\r\x00\n", "\r\u2028", "\r\ufeff\n", "Ǆ°", "»￠", "￢©", "A\u0303©", "A\u0303", "©",
    "Ã©", "â€™", "â€œ", "â€", "Â ", "Â£", "ГўВЂВ", "вЂ", "√©", "Ã\xa0", "œ ", "ﬁ", "ǅ", "ŉ", "￥", "￤", "ａ",
    "\u2028", "\x00", "\ufeff", "\x85", "A\u0300", "\u0301", "¥", "€", "中文", "hello", " ",
]

# Characters that pass the gate but can still take part in BADNESS_RE matches, map keys (some of whose outputs are
# gate characters: ￥ -> ¥), combining marks (NFC can compose gate characters: A + U+0303 -> Ã), line breaks and
# controls: text made of these takes the whole-text path and exercises ftfy's second round.
CLEAN = sorted(
    (BAD_CLASS - GATE - set(ff._SUSPECT_SET))
    | set(ff._COMBINED)
    | set("\u0300\u0301\u0302\u0303\u0308\u030a\u0327\u0338AaCcEeNnOoUu \r\n\u2028\u2029&;#<中文，")
)
mojibake = st.tuples(
    st.text(st.characters(codec="utf-8"), max_size=8), st.sampled_from(ENCODINGS), st.sampled_from([None, "NFD"])
).map(
    lambda t: (lambda m: unicodedata.normalize(t[2], m) if t[2] else m)(t[0].encode("utf-8").decode(t[1], "replace"))
)
any_text = st.text(st.characters(exclude_categories=()), max_size=60)
special_text = st.text(st.sampled_from(SPECIAL_SAMPLE), max_size=40)
clean_text = st.text(st.sampled_from(CLEAN), max_size=30)
token_text = st.lists(
    st.one_of(st.sampled_from(TOKENS), mojibake, special_text, clean_text, st.text(max_size=4)), max_size=16
).map("".join)
forms = st.sampled_from(FORMS)

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_same(text: str, form: str | None) -> None:
    assert fix_text_fast(text, form) == ftfy.fix_text(text, normalization=form), (text, form)


@SETTINGS
@given(any_text, forms)
def test_equals_ftfy_on_arbitrary_text(text, form):
    assert_same(text, form)


@SETTINGS
@given(special_text, forms)
def test_equals_ftfy_on_gate_and_map_characters(text, form):
    assert_same(text, form)


@SETTINGS
@given(clean_text, forms)
def test_equals_ftfy_on_text_that_passes_the_gate(text, form):
    assert_same(text, form)


@SETTINGS
@given(token_text, forms)
def test_equals_ftfy_on_mojibake_entities_controls_and_line_breaks(text, form):
    assert_same(text, form)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(token_text, any_text), min_size=2, max_size=6), forms)
def test_equals_ftfy_on_multi_line_documents(lines, form):
    assert_same("\n".join(lines), form)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(
    "text",
    [
        "", "\n", "plain ascii\n", "ＬＯＵＤ　ＮＯＩＳＥＳ", "“quoted” ‘x’", "a\r\nb\rc\u2028d\x85e",
        "\r\x00\n", "x＆ａｍｐ；y", "＆ａｍｐ；ｌｔ；", "a &amp; b\n<p>&amp;</p>\n&amp;", "&amp;\n<", "<\n&amp;",
        "sÃ³", "voilÃ le travail", "Ã\n", "l'Ã\x00 la", "é￥", "\x1b[36;44mblue\x1b[0m", "\x1b［３６ｍ",
        "\ud83d\udca9", "\udca9\ud83d", "A\u0300€", "ǅ", "ŉ", "ﬂuﬃeﬆ", "价格￥100元，好评！", "¯\\_(ã\x83\x84)_/¯",
        "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u2014 “done”", "&#35828;&#23454;&#35805;，好", "\ufeffBOM",
        "中\r\x00\n文", "中\r\u2028文", "“a”\r\n“b”\r", "Ǆ°", "»￠", "￢©", "A\u0303©", "a\nA\u0303©\n<b>",
        "x\n<y>\nA\u0303©", "ｘ\n&amp;\n<\n&amp;", "A\u0303\u00a9 &amp;",
    ],
)
def test_equals_ftfy_on_examples(text, form):
    assert_same(text, form)


def test_equals_ftfy_when_a_line_is_cut_at_max_decode_length():
    text = "x" * 1_000_001 + "Ã©\n“tail”"
    assert len(text) > 1_000_000
    assert_same(text, "NFC")


def test_invalid_form_behaves_like_ftfy():
    with pytest.raises(ValueError):
        ftfy.fix_text("x", normalization="nfx")
    with pytest.raises(ValueError):
        fix_text_fast("x", normalization="nfx")


# --- real documents ----------------------------------------------------------------------------------------------


def strings_in(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def read_corpus_file(path: Path) -> list[str]:
    if path.name.endswith(".jsonl.gz"):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            return [json.loads(line)["text"] for line in handle if line.strip()]
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return [s for row in pq.read_table(path).to_pylist() for s in strings_in(row) if s]
    raw = path.read_text(encoding="utf-8")
    try:
        records = [json.loads(raw)]
    except json.JSONDecodeError:
        records = [json.loads(line) for line in raw.splitlines() if line.strip()]
    return [s for record in records for s in strings_in(record) if s]


@lru_cache(maxsize=1)
def corpus_sample(char_budget: int = 80_000) -> tuple[tuple[str, str], ...]:
    """Per corpus file: every document with a gate, special or map-key character, `&` or `\\r` first (these
    exercise the careful paths), then an even spread of the rest, up to `char_budget` characters."""
    interesting = re.compile(f"[{ff._GATE_CHARS}{ff._SPECIAL}\r&\u2028\u2029]")
    files = sorted(CORPUS.glob("*/*.jsonl.gz")) + sorted((CORPUS / "steel").glob("*"))
    sample = []
    for path in files:
        docs = read_corpus_file(path)
        flagged = [d for d in docs if interesting.search(d)]
        rest = [d for d in docs if not interesting.search(d)]
        step = max(1, len(rest) // 200)
        used = 0
        for doc in sorted(flagged, key=len) + rest[::step]:
            if used + len(doc) > char_budget:
                continue
            used += len(doc)
            sample.append((path.name, doc))
    return tuple(sample)


@pytest.mark.corpus
def test_equals_ftfy_on_real_documents():
    if not CORPUS.is_dir():
        pytest.skip(f"real corpus not found at {CORPUS}")
    sample = corpus_sample()
    assert len(sample) > 1000
    mismatches = [(name, doc[:80]) for name, doc in sample if fix_text_fast(doc) != ftfy.fix_text(doc)]
    assert not mismatches, mismatches[:5]


@pytest.mark.parametrize("params, form", [({}, "NFC"), ({"normalization": "nfkc"}, "NFKC"), ({"normalization": "NFD"}, "NFD")])
def test_fix_unicode_mapper_uses_it(params, form):
    from operators import registry

    op = registry.build("fix_unicode_mapper", params)
    op.ensure_ready()
    texts = ["ＬＯＵＤ　“x”\r\n", "sÃ³ &amp;", "价格￥100元，好评！", "A\u0303©\n<b>&amp;</b>", ""]
    assert op.map_texts(texts) == [ftfy.fix_text(t, normalization=form) for t in texts]
