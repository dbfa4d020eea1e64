"""Recipes: both real recipes load; invalid ones are refused, naming the op and parameter, before reading."""

from __future__ import annotations

from pathlib import Path

import pytest

from operators.registry import RecipeError
from steel_data.cli import main
from steel_data.recipe import load_recipe

REPO = Path(__file__).resolve().parents[2]


def test_code_recipe_loads_with_the_paper_parameters():
    r = load_recipe(REPO / "recipes" / "steel-code.yaml")
    names = [op.name for op in r.ops]
    assert names.count("alphanumeric_filter") == 2
    assert r.op_labels()[names.index("alphanumeric_filter") + 1] == "alphanumeric_filter#2"
    assert r.dedup.params.ignore_pattern == r"\p{P}"
    wr = [op for op in r.ops if op.name == "word_repetition_filter"][0]
    assert (wr.params.rep_len, wr.params.max_ratio) == (10, 0.357)


def test_text_recipe_has_12_mappers_9_filters_and_dedup(tmp_path):
    (tmp_path / "zh.sp.model").write_bytes(b"x")
    (tmp_path / "zh.arpa.bin").write_bytes(b"x")
    r = load_recipe(REPO / "recipes" / "steel-text.yaml", {"perplexity_filter": {"model_dir": str(tmp_path)}})
    kinds = [op.kind for op in r.ops]
    assert kinds.count("mapper") == 12 and kinds.count("filter") == 9 and kinds[-1] == "deduplicator"
    assert r.ops[0].params.mode == "t2s"
    mll = [op for op in r.ops if op.name == "maximum_line_length_filter"][0]
    assert (mll.params.min_len, mll.params.max_len) == (10, 1000)  # min keeps its default


@pytest.mark.parametrize(
    "recipe, message",
    [
        ({"process": [{"no_such_op": {}}]}, r"process\[0\].*unknown operator 'no_such_op'"),
        ({"process": [{"text_length_filter": {"min_lenght": 3}}]}, r"text_length_filter.*'min_lenght'.*unknown"),
        ({"process": [{"text_length_filter": {"min_len": "many"}}]}, r"text_length_filter.*'min_len'"),
        ({"process": [{"clean_links_mapper": {"pattern": "("}}]}, r"clean_links_mapper.*'pattern'.*regular"),
        ({"process": [{"document_simhash_deduplicator": {}}, {"text_length_filter": {}}]}, "must be the last"),
        ({"process": []}, "non-empty list"),
        ({"process": [{"text_length_filter": {}}], "bogus": 1}, "unknown top-level"),
        ({"process": [{"text_length_filter": {}}], "text_keys": ["a", "b"]}, "exactly one text key"),
    ],
)
def test_invalid_recipes_are_refused(recipe, message):
    with pytest.raises(RecipeError, match=message):
        load_recipe(recipe)


def test_cli_refuses_before_reading_any_data(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("process:\n  - text_length_filter:\n      max_length: 5\n")
    code = main(["run", str(bad), "-i", str(tmp_path / "does-not-exist.jsonl"), "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "max_length" in err and "text_length_filter" in err
    assert not (tmp_path / "o").exists()


def test_data_juicer_globals_are_accepted_with_a_warning():
    with pytest.warns(UserWarning, match="np"):
        r = load_recipe({"np": 4, "use_cache": False, "process": [{"text_length_filter": {}}]})
    assert len(r.ops) == 1
