"""remove_repeat_sentences: the whole-document splitter equals Data-Juicer's per-line procedure."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from operators import registry

PIECES = ["。", "！", "!", "？", "?", ".", "......", "……", "’", "”", "\n", "\x1e", " ", "a", "ab", "今天", "天气",
          "6", "2", "{", "}", "，", "\t", "x.y", "Hello", "1.5", "\u3000", "\xa0", "\r", "  ", "§", "— ", " a",
          "HELLO", "Σ", "ΑΣ."]
texts = st.one_of(
    st.lists(st.sampled_from(PIECES), max_size=60).map("".join),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=200),
)


def ops():
    out = []
    for params in ({}, {"fix_sentence_split": True}, {"lowercase": True, "ignore_special_character": False},
                   {"lowercase": True}, {"ignore_special_character": False}, {"min_repeat_sentence_length": 5},
                   {"min_repeat_sentence_length": 0}):
        op = registry.build("remove_repeat_sentences_mapper", params)
        op.ensure_ready()
        out.append(op)
    return out


OPS = ops()


@settings(max_examples=400, deadline=None)
@given(texts)
def test_whole_text_split_equals_per_line_reference(text):
    for op in OPS:
        assert op.map_text(text) == op.map_text_reference(text)
