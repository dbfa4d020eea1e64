"""perplexity_filter with real sentencepiece and KenLM models built by the test."""

from __future__ import annotations

import pytest

from operators import registry
from operators.doc import Doc
from steel_data.lm import build_tiny_models

TEXTS = [
    "今天天气很好，我们去公园散步。\n公园里有很多花。",
    "科学家发现睡眠可以提高学习效率。",
    "The river flows through three provinces.",
] * 20


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return build_tiny_models(TEXTS, tmp_path_factory.mktemp("lm"), lang="zh", vocab_size=120)


def test_perplexity_follows_the_data_juicer_formula(models):
    import kenlm
    import sentencepiece

    op = registry.build("perplexity_filter", {"lang": "zh", "model_dir": str(models), "max_ppl": 1500})
    op.ensure_ready()
    sp = sentencepiece.SentencePieceProcessor(model_file=str(models / "zh.sp.model"))
    lm = kenlm.Model(str(models / "zh.arpa.bin"))
    for text in TEXTS[:3] + ["完全没见过的句子", ""]:
        joined = " ".join(sp.encode_as_pieces(text))
        score = sum(lm.score(line, bos=True, eos=True) for line in joined.splitlines())
        length = sum(len(line.split()) + 1 for line in joined.splitlines())
        expected = round(10 ** (-score / length), 1) if length else 0.0
        assert op.compute_stats([Doc(text)])[0] == expected
    seen, unseen = op.compute_stats([Doc(TEXTS[1]), Doc("zqxj wvvk plmn")])
    assert seen < unseen


def test_missing_models_are_refused_up_front(tmp_path):
    with pytest.raises(registry.RecipeError, match="perplexity_filter.*model_dir"):
        registry.build("perplexity_filter", {"lang": "zh"})
    with pytest.raises(registry.RecipeError, match="not found"):
        registry.build("perplexity_filter", {"lang": "zh", "model_dir": str(tmp_path)})
