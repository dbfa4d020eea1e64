from __future__ import annotations

import pytest

from operators import Mapper, registry
from operators.base import Filter


def test_all_recipe_operators_are_registered():
    expected = {
        "chinese_convert_mapper", "clean_email_mapper", "clean_html_mapper", "clean_ip_mapper", "clean_links_mapper",
        "clean_copyright_mapper", "expand_macro_mapper", "fix_unicode_mapper", "punctuation_normalization_mapper",
        "remove_repeat_sentences_mapper", "remove_specific_chars_mapper", "whitespace_normalization_mapper",
        "alphanumeric_filter", "average_line_length_filter", "character_repetition_filter",
        "maximum_line_length_filter", "perplexity_filter", "special_characters_filter", "text_length_filter",
        "words_num_filter", "word_repetition_filter", "document_simhash_deduplicator",
    }
    assert expected <= set(registry.names())


def test_duplicate_registration_is_refused():
    registry.names()

    class Twin(Mapper):
        name = "clean_email_mapper"

    with pytest.raises(ValueError, match="already registered"):
        registry.register(Twin)


def test_unknown_operator_and_parameter_are_named():
    with pytest.raises(registry.RecipeError, match="unknown operator 'no_such_mapper'"):
        registry.build("no_such_mapper", {})
    with pytest.raises(registry.RecipeError, match="text_length_filter.*'max_length'.*unknown parameter"):
        registry.build("text_length_filter", {"max_length": 3})
    with pytest.raises(registry.RecipeError, match="'min_len'"):
        registry.build("text_length_filter", {"min_len": "ten"})


def test_data_juicer_executor_options_are_accepted():
    op = registry.build("text_length_filter", {"batch_size": 100, "num_proc": 4, "min_len": 1})
    assert op.params.min_len == 1


def test_every_filter_declares_stat_key_and_bounds():
    for name in registry.names():
        cls = registry.get(name)
        if issubclass(cls, Filter):
            assert registry.info(name).stat_key, name
            lo, hi = cls.bounds
            assert lo in cls.Params.model_fields and hi in cls.Params.model_fields, name


def test_ops_pickle_without_heavy_state():
    import pickle

    op = registry.build("chinese_convert_mapper", {"mode": "t2s"})
    op.ensure_ready()
    clone = pickle.loads(pickle.dumps(op))
    assert clone.params == op.params
    assert clone.apply(["乾燥"]).texts == ["干燥"]  # heavy state rebuilt on first use


def test_arrow_forms_of_mappers_and_filters():
    """`Mapper.process(batch) -> batch` and `Filter.compute_stats_table(batch)` (DESIGN.md's contract)."""
    import pyarrow as pa

    batch = pa.table({"id": ["a", "b"], "text": ["乾燥", "頭髮很長"], "meta": [1, 2]})
    mapper = registry.build("chinese_convert_mapper", {"mode": "t2s"})
    out = mapper.process(batch)
    assert out.column("text").to_pylist() == ["干燥", "头发很长"]
    assert out.column("id").equals(batch.column("id")) and out.column("meta").equals(batch.column("meta"))
    filt = registry.build("text_length_filter", {})
    assert filt.compute_stats_table(out).to_pylist() == [2, 4]
