"""Properties over arbitrary Unicode: no operator raises, and results do not depend on batching."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators import registry
from operators.base import Deduplicator, Filter, Mapper
from operators.doc import Doc

# Operators that need external models are covered in their own tests.
NEEDS_MODELS = {"perplexity_filter"}

texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=400)
tricky = st.lists(
    st.sampled_from(["<li>", "</ol>", "&amp;", "http://a.b/c", "www.x.cn", "a@b.com", "1.2.3.4", "\\def\\x{y}",
                     "\\newcommand{\\z}{w}", "/*", "*/", "copyright", "\r\n", "\u3000", "。", "”", "……", "１", "乾燥",
                     "Ã©", "\x00", "\x84", "😀", " ", "\n", "\t", "\\x", "{6}", "2’"]),
    max_size=40,
).map("".join)


def all_ops():
    ops = []
    for name in registry.names():
        if name in NEEDS_MODELS:
            continue
        op = registry.build(name, {})
        op.ensure_ready()
        ops.append(op)
    return ops


OPS = all_ops()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(texts, tricky), min_size=1, max_size=5))
def test_no_operator_raises_and_batching_does_not_matter(batch):
    for op in OPS:
        if isinstance(op, Mapper):
            whole = op.map_texts(batch)
            one_by_one = [op.map_texts([t])[0] for t in batch]
            assert whole == one_by_one, op.name
            assert all(isinstance(t, str) for t in whole)
        elif isinstance(op, Filter):
            whole = op.compute_stats([Doc(t) for t in batch])
            one_by_one = [op.compute_stats([Doc(t)])[0] for t in batch]
            assert whole == one_by_one, op.name
            assert all(isinstance(op.keeps(v), bool) for v in whole)
        elif isinstance(op, Deduplicator):
            fps = op.fingerprints(batch)
            assert all(0 <= f < 2**64 for f in fps)


@pytest.mark.parametrize("name", ["fix_unicode_mapper", "clean_html_mapper", "whitespace_normalization_mapper"])
def test_mappers_are_idempotent_where_data_juicer_is(name):
    op = registry.build(name, {})
    op.ensure_ready()
    for text in ["  plain text  ", "<b>x</b>", "ＡＢＣ"]:
        once = op.map_texts([text])[0]
        assert op.map_texts([once])[0] == once
