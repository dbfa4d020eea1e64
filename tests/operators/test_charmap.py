"""The fast per-character paths equal their plain references."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from operators import registry
from operators.charmap import CharMap
from operators.charsets import VARIOUS_WHITESPACES
from operators.mappers.normalize import PUNCTUATION_MAP

marks = "".join(PUNCTUATION_MAP) + "".join(VARIOUS_WHITESPACES) + "◆●■►▼▲▴∆▻▷❖♡□"
texts = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=200),
    st.text(alphabet=st.sampled_from(marks + "ab中文 \n0.1:"), max_size=200),
    st.lists(st.sampled_from(["http", "://", "www", "WWW", "Www.", ".com", "/", "a", "中", " ", "1.2.3.4", ".", ":",
                              "\u212a", "\u017f", "ftp:x", "ftp:\u017f", "10:30", ": x", "a.bc/", ".\u212a\u212a/", "(", ")", "@", "a@b", "@Override", "x.y", "+", "_", "-"]), max_size=30).map("".join),
)


def op(name, **params):
    o = registry.build(name, params)
    o.ensure_ready()
    return o


LINKS, LINKS_FIX = op("clean_links_mapper"), op("clean_links_mapper", stop_at_cjk=True)
EMAIL = op("clean_email_mapper")
PUNCT, PUNCT_FIX, WS, SPECIFIC, IP = (op("punctuation_normalization_mapper"),
                                      op("punctuation_normalization_mapper", fix_fullwidth_one=True),
                                      op("whitespace_normalization_mapper"), op("remove_specific_chars_mapper"),
                                      op("clean_ip_mapper"))


@settings(max_examples=300, deadline=None)
@given(texts)
def test_fast_paths_equal_translate_references(text):
    assert PUNCT.map_text(text) == text.translate(str.maketrans(PUNCTUATION_MAP))
    assert PUNCT_FIX.map_text(text) == text.translate(str.maketrans({**PUNCTUATION_MAP, "１": "1"}))
    assert WS.map_text(text) == text.strip().translate(str.maketrans({c: " " for c in VARIOUS_WHITESPACES}))
    assert SPECIFIC.map_text(text) == text.translate(str.maketrans({c: None for c in "◆●■►▼▲▴∆▻▷❖♡□"}))
    assert IP.map_text(text) == IP._regex.sub("", text)  # the gate never skips a match
    assert LINKS.map_text(text) == LINKS._regex.sub("", text)
    assert EMAIL.map_text(text) == EMAIL._regex.sub("", text)
    assert LINKS_FIX.map_text(text) == LINKS_FIX._regex.sub("", text)


def test_charmap_identity_and_empty():
    assert CharMap({}).__call__("abc") == "abc"
    assert CharMap({" ": " "})("a b") == "a b"
    assert CharMap({"a": "xy", "b": ""})("abc") == "xyc"
