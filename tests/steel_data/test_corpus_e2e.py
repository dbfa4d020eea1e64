"""Both recipes end to end on real Steel-LLM source samples (../shared/corpus/steel)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from steel_data.cli import main

pytestmark = pytest.mark.corpus
REPO = Path(__file__).resolve().parents[2]


def run_cli(*args) -> dict:
    out = Path(args[args.index("-o") + 1])
    assert main(["run", *args, "--no-progress"]) == 0
    return json.loads((out / "stats.json").read_text())


@pytest.fixture(scope="module")
def corpus_models(corpus, tmp_path_factory):
    """Tiny real perplexity models trained on the web text itself (Data-Juicer's are a download)."""
    from steel_data.lm import build_tiny_models

    texts = []
    for name, key in (("sky_2021-31_zh_head_0000_sample.jsonl", "text"),
                      ("wanjuan_part-010205-a894b46e_sample.jsonl", "content")):
        with open(corpus / "steel" / name, encoding="utf-8") as fh:
            texts += [json.loads(line)[key] for _, line in zip(range(200), fh)]
    return build_tiny_models(texts, tmp_path_factory.mktemp("lm"), lang="zh", vocab_size=3000)


def test_text_recipe_on_skypile_and_wanjuan(corpus, corpus_models, tmp_path):
    models = corpus_models
    for name, key in (("sky_2021-31_zh_head_0000_sample.jsonl", "text"),
                      ("wanjuan_part-010205-a894b46e_sample.jsonl", "content")):
        out = tmp_path / name
        stats = run_cli(str(REPO / "recipes/steel-text.yaml"), "-i", str(corpus / "steel" / name), "-o", str(out),
                        "--text-key", key, "--workers", "2", "--set", f"perplexity_filter.model_dir={models}")
        acc = stats["accounting"]
        assert acc["balanced"] and acc["input_records"] >= 500
        assert 0 < stats["output_docs"] < acc["input_records"]
        texts = [t for p in (out / "data").glob("*.parquet") for t in pq.read_table(p).column("text").to_pylist()]
        assert len(texts) == stats["output_docs"]
        # what the recipe promises about every kept document
        assert all(10 <= len(t) <= 100000 for t in texts)
        assert not any(c in t for t in texts for c in "◆●■►▼▲▴∆▻▷❖♡□")
        assert not any(t != t.strip() for t in texts)
        assert "audits" in stats  # Chinese web text trips the empty-fingerprint audit


def test_code_recipe_on_starcoder(corpus, tmp_path):
    out = tmp_path / "code"
    stats = run_cli(str(REPO / "recipes/steel-code.yaml"), "-i", *map(str, sorted((corpus / "steel").glob("starcode_*"))),
                    "-o", str(out), "--text-key", "content", "--skip-op", "alphanumeric_filter", "--shard-size", "500")
    acc = stats["accounting"]
    assert acc["balanced"] and acc["input_records"] >= 1000
    ops = {o["label"]: o for o in stats["ops"]}
    assert ops["clean_copyright_mapper"]["modified"] > 0  # licence headers are real in StarCoder data
    assert stats["output_docs"] > 0
    cols = pq.read_table(next((out / "data").glob("*.parquet"))).column_names
    assert {"id", "text"} <= set(cols) and "content" not in cols
