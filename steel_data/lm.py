"""Tiny perplexity models built from local text: a sentencepiece model and a bigram KenLM ARPA file.

Data-Juicer's perplexity filter uses its published Wikipedia models; Steel never downloads at run
time, so the built-in sample run and the tests build small real models from text they have. The files
are named as Data-Juicer names them (`{lang}.sp.model`, `{lang}.arpa.bin`), so `model_dir` works for
both; KenLM recognises the ARPA text format whatever the file is called.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path


def train_sentencepiece(texts: list[str], model_prefix: Path, vocab_size: int = 400) -> Path:
    import io

    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(t for t in texts if t.strip()),
        model_writer=model,
        vocab_size=vocab_size,
        character_coverage=0.98,  # rare characters become <unk>: a tiny model must not need one piece each
        model_type="unigram",
        hard_vocab_limit=False,
        minloglevel=2,
    )
    path = Path(str(model_prefix) + ".model")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.getvalue())
    return path


def write_bigram_arpa(token_lines: list[list[str]], path: Path, discount: float = 0.5) -> Path:
    """A back-off bigram model (absolute discounting over add-one unigrams) in ARPA format.

    KenLM's loader needs at least a bigram model; this is the smallest honest one.
    """
    uni: Counter[str] = Counter()
    bi: Counter[tuple[str, str]] = Counter()
    for tokens in token_lines:
        seq = ["<s>", *tokens, "</s>"]
        uni.update(seq[1:])
        bi.update(zip(seq[:-1], seq[1:]))
    uni["<unk>"] += 0
    vocab = sorted(uni)
    total = sum(uni.values()) + len(vocab)
    p_uni = {w: (uni[w] + 1) / total for w in vocab}
    history: Counter[str] = Counter()
    followers: dict[str, list[str]] = {}
    for (w1, w2), c in bi.items():
        history[w1] += c
        followers.setdefault(w1, []).append(w2)
    lines = ["", "\\data\\", f"ngram 1={len(vocab) + 1}", f"ngram 2={len(bi)}", "", "\\1-grams:"]
    backoff: dict[str, float] = {}
    for w1, ws in followers.items():
        left = discount * len(ws) / history[w1]
        rest = 1.0 - sum(p_uni.get(w, 0.0) for w in ws)
        backoff[w1] = math.log10(left / rest) if rest > 0 and left > 0 else 0.0
    lines.append(f"-99\t<s>\t{backoff.get('<s>', 0.0):.6f}")
    for w in vocab:
        lines.append(f"{math.log10(p_uni[w]):.6f}\t{w}\t{backoff.get(w, 0.0):.6f}")
    lines += ["", "\\2-grams:"]
    for (w1, w2), c in sorted(bi.items()):
        lines.append(f"{math.log10((c - discount) / history[w1]):.6f}\t{w1} {w2}")
    lines += ["", "\\end\\", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def build_tiny_models(texts: list[str], outdir: Path, lang: str = "zh", vocab_size: int = 400) -> Path:
    """Write `{lang}.sp.model` and `{lang}.arpa.bin` (ARPA text) into `outdir`; returns `outdir`."""
    import sentencepiece as spm

    outdir = Path(outdir)
    sp_path = train_sentencepiece(texts, outdir / f"{lang}.sp", vocab_size)
    sp = spm.SentencePieceProcessor(model_file=str(sp_path))
    token_lines = [" ".join(sp.encode_as_pieces(t)).split() for t in texts for t in t.splitlines() if t.strip()]
    write_bigram_arpa(token_lines, outdir / f"{lang}.arpa.bin")
    return outdir
