"""Filters: documented definitions, bounds, and parity of the vectorised paths with plain references."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators import registry
from operators.charsets import special_characters
from operators.doc import Doc


def stat(name: str, text: str, **params):
    op = registry.build(name, params)
    op.ensure_ready()
    return op.compute_stats([Doc(text)])[0]


# --- plain references, written from the definitions in OPERATORS.md -------------------------------
def ref_words(text: str) -> list[str]:
    import re

    return [w for w in re.split(" |\n|\t", text) if w]


def ref_strip(word: str) -> str:
    specials = special_characters()
    while word and word[0] in specials:
        word = word[1:]
    while word and word[-1] in specials:
        word = word[:-1]
    return word


def ref_char_rep(text: str, n: int = 10) -> float:
    freq: dict[str, int] = {}
    for i in range(len(text) - n + 1):
        freq[text[i : i + n]] = freq.get(text[i : i + n], 0) + 1
    if not freq:
        return 0.0
    counts = sorted(freq.values(), reverse=True)
    k = min(int(math.sqrt(len(counts))), len(counts) - counts.count(1))
    return sum(counts[:k]) / sum(counts)


def ref_word_rep(text: str, n: int = 10) -> float:
    words = [w for w in (ref_strip(w.lower()) for w in ref_words(text)) if w]
    freq: dict[str, int] = {}
    for i in range(len(words) - n + 1):
        g = " ".join(words[i : i + n])
        freq[g] = freq.get(g, 0) + 1
    if not freq:
        return 0.0
    return sum(c for c in freq.values() if c > 1) / sum(freq.values())


unicode_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=300)
repetitive = st.lists(st.sampled_from(["ab", "的", " ", "\n", "！", "x y", "😀", "\t", "。"]), max_size=200).map("".join)


@settings(max_examples=200, deadline=None)
@given(st.one_of(unicode_text, repetitive))
def test_vectorised_stats_match_references(text):
    specials = special_characters()
    assert stat("alphanumeric_filter", text) == (sum(c.isalnum() for c in text) / len(text) if text else 0.0)
    assert stat("special_characters_filter", text) == (
        sum(c in specials for c in text) / len(text) if text else 0.0
    )
    assert stat("character_repetition_filter", text) == ref_char_rep(text)
    assert stat("word_repetition_filter", text) == ref_word_rep(text)
    refined = [w for w in (ref_strip(w) for w in ref_words(text)) if w]
    assert stat("words_num_filter", text) == len(refined)
    lines = text.splitlines()
    assert stat("average_line_length_filter", text) == (len(text) / len(lines) if lines else 0.0)
    assert stat("maximum_line_length_filter", text) == (max(map(len, lines)) if lines else 0)
    assert stat("text_length_filter", text) == len(text)


def test_documented_word_split():
    # split on ASCII space, \n and \t only; \u3000, \r, \xa0 do not split
    assert stat("words_num_filter", "a b\nc\td\u3000e\rf\xa0g") == 4
    # special characters are stripped from both ends; words that become empty are dropped
    assert stat("words_num_filter", "“hello” ... (world)") == 2


def test_special_characters_membership():
    specials = special_characters()
    for c in "一上士，。！😀 1!":
        assert c in specials
    for c in "中文a":
        assert c not in specials


def test_cjk_counts_as_alphanumeric():
    assert stat("alphanumeric_filter", "中文字") == 1.0


def test_bounds_are_inclusive_and_switchable():
    op = registry.build("text_length_filter", {"min_len": 3, "max_len": 5})
    assert [op.keeps(v) for v in (2, 3, 5, 6)] == [False, True, True, False]
    op = registry.build("text_length_filter", {"min_len": 3, "max_len": 5, "min_closed_interval": False})
    assert not op.keeps(3)
    # Data-Juicer flips the closedness and then negates, so a reversed [3, 5] keeps its own bounds too
    op = registry.build("text_length_filter", {"min_len": 3, "max_len": 5, "reversed_range": True})
    assert [op.keeps(v) for v in (2, 3, 4, 5, 6)] == [True, True, False, True, True]


def test_char_repetition_known_value():
    # "aaaaaaaaaaaa" (12): 3 ten-grams, all equal -> 1 distinct, k = min(1, 1) = 1 -> 3/3
    assert stat("character_repetition_filter", "a" * 12) == 1.0
    assert stat("character_repetition_filter", "short") == 0.0


def test_tokenized_alphanumeric_uses_the_given_tokenizer(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1, "world": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    # 10 letters over 2 tokens
    assert stat("alphanumeric_filter", "hello world", tokenization=True, hf_tokenizer=str(path)) == 5.0
    assert stat("alphanumeric_filter", "", tokenization=True, hf_tokenizer=str(path)) == 0.0


def test_word_filters_refuse_tokenization_without_model():
    with pytest.raises(registry.RecipeError, match="model_path"):
        registry.build("words_num_filter", {"tokenization": True})


@settings(max_examples=200, deadline=None)
@given(st.one_of(unicode_text, repetitive, st.text(alphabet="ab", min_size=10, max_size=400)))
def test_hashed_char_ngram_counts_equal_byte_comparison(text):
    import numpy as np

    from operators.filters.text_stats import char_ngram_counts, char_ngram_counts_bytes

    cps = Doc(text).codepoints
    for n in (1, 3, 10):
        if len(cps) >= n:
            assert sorted(char_ngram_counts(cps, n).tolist()) == sorted(char_ngram_counts_bytes(cps, n).tolist())
    # period 7 over 50 code points: 41 ten-grams, 7 distinct
    assert np.sort(char_ngram_counts(np.arange(50, dtype=np.uint32) % 7, 10)).tolist() == [5, 6, 6, 6, 6, 6, 6]


def test_class_tables_match_python_and_survive_the_disk_cache(tmp_path, monkeypatch):
    import numpy as np

    from operators.filters import text_stats

    monkeypatch.setenv("STEEL_CACHE", str(tmp_path))
    built = text_stats._cached_class_table("alnum")
    loaded = text_stats._cached_class_table("alnum")  # second call reads the file
    assert list(tmp_path.glob("alnum-unicode-*.npy"))
    assert np.array_equal(built, loaded)
    for cp in (ord("a"), ord("中"), ord("1"), ord("٣"), ord("!"), ord(" "), 0x10FFFF):
        assert bool(loaded[cp]) == chr(cp).isalnum()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(unicode_text, repetitive, st.text(alphabet="ab", max_size=400)), max_size=12),
       st.sampled_from([1, 3, 10]))
def test_batched_char_repetition_equals_per_document(texts, n):
    op = registry.build("character_repetition_filter", {"rep_len": n})
    op.ensure_ready()
    docs = [Doc(t) for t in texts]
    assert op.compute_stats(docs) == [op.compute_stat(d) for d in docs]
    assert op.compute_stats(docs) == [ref_char_rep(t, n) for t in texts]


def test_batched_char_repetition_on_real_text_and_collision_fallback(monkeypatch):
    import numpy as np

    from operators.filters import text_stats

    texts = ["今天天气很好。" * 30, "no repeats at all in this line", "x" * 9, "", "abcabcabcabcabc" * 50,
             "一二三四五六七八九十" * 3 + "完"]
    op = registry.build("character_repetition_filter", {})
    op.ensure_ready()
    expected = [ref_char_rep(t) for t in texts]
    assert op.compute_stats([Doc(t) for t in texts]) == expected
    assert expected[0] > 0.2 and expected[1] == 0.0 and expected[4] > 0.3
    # Every n-gram hashing alike: the batch sees "equal" n-grams that are not, and hands over to the
    # per-document path (whose exact byte comparison then decides).
    monkeypatch.setattr(text_stats, "_HASH_MULTIPLIER", np.uint64(0))
    assert text_stats.char_repetition_ratios([Doc(t).codepoints for t in texts], 10) is None
    assert op.compute_stats([Doc(t) for t in texts]) == expected


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(unicode_text, repetitive, st.just(""), st.just("！！ ,, a"), st.just("   ")), max_size=12))
def test_batched_words_num_equals_per_document(texts):
    op = registry.build("words_num_filter", {"lang": "zh"})
    op.ensure_ready()
    docs = [Doc(t) for t in texts]
    expected = [len([w for w in (ref_strip(w) for w in ref_words(t)) if w]) for t in texts]
    assert op.compute_stats(docs) == [op.compute_stat(d) for d in docs] == expected


def test_batched_char_repetition_splits_large_batches(monkeypatch):
    # many small calls (a batch limit of 64 code points) give what one call gives
    texts = ["今天天气很好。" * (i % 7 + 1) + "ab" * i for i in range(40)]
    op = registry.build("character_repetition_filter", {})
    op.ensure_ready()
    whole = op.compute_stats([Doc(t) for t in texts])
    monkeypatch.setattr(type(op), "BATCH_CODEPOINTS", 64)
    assert op.compute_stats([Doc(t) for t in texts]) == whole == [ref_char_rep(t) for t in texts]
