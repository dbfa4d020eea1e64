"""`html_to_text` equals CleanHtmlMapper's reference (list tags to `\\n*`, then selectolax/lexbor's text()) on
every code point, on random text and on real documents."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from operators import registry
from operators.mappers.html_fast import html_to_text, html_to_text_reference

from .test_ftfy_fast import CORPUS, read_corpus_file

SETTINGS = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NO_MARKUP = [chr(c) for c in range(0x110000) if chr(c) not in "<&"]


def assert_same(text: str) -> None:
    assert html_to_text(text) == html_to_text_reference(text), text


@pytest.mark.parametrize("start", range(0, len(NO_MARKUP), 1 << 16))
def test_every_code_point_inside_a_document(start):
    chunk = "".join(NO_MARKUP[start : start + (1 << 16)])
    assert_same("x" + chunk + "x")
    assert_same(chunk)


def test_every_likely_code_point_at_the_start():
    """What counts as leading whitespace (checked offline for all code points in eight contexts)."""
    chars = [c for c in NO_MARKUP[:0x3100]] + list("\ufeff\ufffd\ufffe\uffff\U0001f600\ud800\udfff\ue000")
    for c in chars:
        for text in (c + "x", c + " \n x", c + c, " " + c, "\x00" + c + " "):
            assert_same(text)


@pytest.mark.parametrize(
    "text",
    [
        "", " ", "\n\t\x0c \r\n", "  plain", "\x00  a", "a\x00b", "\r\x00\n", "\x00\r\n a", "\r\ud800\n",
        "\ud800 a", "\ufeff a", "\x0b a", "\u3000a", "a\rb\r\nc\n\rd", "中文\r\n\r\n", "<li>a</li>", "a &amp; b",
        "a & b", "x<b>y</b>", "&lt;li&gt;",
    ],
)
def test_examples(text):
    assert_same(text)


CHARS = list("\r\n\x00\t\x0c \x0ba中\ufeff\x85\u2028\u3000\ud800\udc00<&/;#") + ["li>", "ol>", "amp;", "lt;"]


@SETTINGS
@given(st.lists(st.sampled_from(CHARS), max_size=30).map("".join))
def test_equals_reference_on_whitespace_controls_and_markup(text):
    assert_same(text)


@SETTINGS
@given(st.text(st.characters(exclude_categories=()), max_size=80))
def test_equals_reference_on_arbitrary_text(text):
    assert_same(text)


def test_mapper_uses_it():
    op = registry.build("clean_html_mapper", {})
    op.ensure_ready()
    texts = ["  a\r\nb\x00", "x<li>a</li>", "中文，好。"]
    assert op.map_texts(texts) == [html_to_text_reference(t) for t in texts]


@pytest.mark.corpus
def test_equals_reference_on_real_documents():
    if not CORPUS.is_dir():
        pytest.skip(f"real corpus not found at {CORPUS}")
    files = sorted(CORPUS.glob("*/*.jsonl.gz")) + sorted((CORPUS / "steel").glob("*"))
    checked = 0
    for path in files:
        docs = read_corpus_file(path)
        # Markup-free documents take the shortcut: check them all (capped); a few others go to the parser.
        plain = [d for d in docs if "<" not in d and "&" not in d][:1500]
        other = [d for d in docs if "<" in d or "&" in d][:20]
        for doc in plain + other:
            assert html_to_text(doc) == html_to_text_reference(doc), (path.name, doc[:80])
        checked += len(plain)
    assert checked > 10000
