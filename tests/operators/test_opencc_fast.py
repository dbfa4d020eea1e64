"""The OpenCC shortcut equals OpenCC itself: arbitrary text, dictionary-heavy text, the real corpus."""

from __future__ import annotations

import gzip
import json

import opencc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.mappers.opencc_fast import OpenCCShortcut, ShortcutUnavailable

CONVERTER = opencc.OpenCC("t2s.json")
SHORTCUT = OpenCCShortcut("t2s", CONVERTER)
PHRASES = sorted(k for keys in SHORTCUT._starts.values() for k in keys)
SINGLES = sorted(chr(c) for c in SHORTCUT._table)

dictionary_heavy = st.lists(
    st.one_of(st.sampled_from(PHRASES), st.sampled_from(SINGLES), st.sampled_from(["乾", "隆", "燥", "\n", " ", "a", "。"]),
              st.sampled_from([p[:-1] for p in PHRASES if len(p) > 2])),
    max_size=40,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(alphabet=st.characters(codec="utf-8"), max_size=200), dictionary_heavy))
def test_shortcut_equals_opencc(text):
    assert SHORTCUT.convert(text) == CONVERTER.convert(text)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80),
                          dictionary_heavy, st.just("")), max_size=10))
def test_batch_equals_opencc(texts):
    assert SHORTCUT.convert_many(texts) == [CONVERTER.convert(t) for t in texts]


def test_opencc_quirks_are_kept():
    assert SHORTCUT.convert("乾燥\x00后面") == CONVERTER.convert("乾燥\x00后面") == "干燥"  # NUL truncates
    with pytest.raises(UnicodeEncodeError):
        SHORTCUT.convert("bad \ud800")
    with pytest.raises(UnicodeEncodeError):  # a batch raises as OpenCC does (the pipeline then isolates it)
        SHORTCUT.convert_many(["乾燥", "bad \ud800"])
    assert SHORTCUT.convert_many(["乾燥\x00后面", "", "頭髮"]) == ["干燥", "", "头发"]
    assert SHORTCUT.convert("乾隆皇帝的頭髮很乾燥") == "乾隆皇帝的头发很干燥"


def test_modes_where_the_shortcut_would_not_pay_are_declined():
    with pytest.raises(ShortcutUnavailable):
        OpenCCShortcut("s2t", opencc.OpenCC("s2t.json"))


@pytest.mark.corpus
def test_shortcut_on_traditional_and_classical_corpus(corpus):
    texts = []
    for name, limit in (("drcd_wiki_paragraphs.jsonl.gz", 2000), ("chinese_poetry.jsonl.gz", 4000),
                        ("tldr_zh.jsonl.gz", 2115)):
        with gzip.open(corpus / "zh" / name, "rt", encoding="utf-8") as fh:
            texts += [json.loads(line)["text"] for _, line in zip(range(limit), fh)]
    assert sum(CONVERTER.convert(t) != t for t in texts) > 1000  # the sample really is traditional
    expected = [CONVERTER.convert(t) for t in texts]
    assert [SHORTCUT.convert(t) for t in texts] == expected
    assert SHORTCUT.convert_many(texts) == expected
