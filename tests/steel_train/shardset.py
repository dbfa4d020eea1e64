"""A small synthetic token-shard set in the real format (steel_data.shards), for trainer tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from steel_data.shards import (Manifest, ShardEntry, ShardWriter, SourceEntry, TokenizerInfo, shard_name,
                               token_dtype, write_manifest)


def make_shards(root: Path, vocab_size: int = 512, seq_len: int = 32, docs: int = 60, shards: int = 2,
                seed: int = 0) -> Path:
    """Documents of a learnable pattern (runs of increasing ids), split over `shards` shards of one source."""
    rng = np.random.default_rng(seed)
    eod = vocab_size - 1
    dtype = token_dtype(vocab_size)
    entries = []
    per = -(-docs // shards)
    for s in range(shards):
        writer = ShardWriter(root / shard_name(s), dtype)
        lengths, toks = [], []
        for _ in range(min(per, docs - s * per)):
            n = int(rng.integers(5, 3 * seq_len))
            start = int(rng.integers(0, vocab_size - 1))
            doc = (start + np.arange(n)) % (vocab_size - 1)
            toks.append(np.append(doc, eod))
            lengths.append(n + 1)
        tokens = np.concatenate(toks)
        writer.add(tokens, np.asarray(lengths))
        w = writer.close()
        entries.append(ShardEntry(name=shard_name(s), source="synthetic", docs=w.docs, skipped_docs=0,
                                  tokens=w.tokens, windows=w.tokens // (seq_len + 1), text_bytes=0,
                                  bin_bytes=w.bin_bytes, idx_bytes=w.idx_bytes, bin_sha256=w.bin_sha256,
                                  idx_sha256=w.idx_sha256, inputs=[]))
    windows = sum(e.windows for e in entries)
    tokens = sum(e.tokens for e in entries)
    info = TokenizerInfo(name="synthetic", kind="huggingface", source="tests", sha256="0" * 64,
                         vocab_size=vocab_size, eod_token="<eod>", eod_id=eod, normalization=None)
    src = SourceEntry(name="synthetic", inputs=[], docs=docs, skipped_docs=0, tokens=tokens, windows=windows,
                      text_bytes=0, weight=1.0, epoch_windows=windows, ratio=1.0)
    manifest = Manifest(job={"id": f"synthetic-{seed}"}, tokenizer=info, vocab_size=vocab_size, dtype=dtype.name,
                        seq_len=seq_len, window=seq_len + 1, eod_id=eod, docs=docs, tokens=tokens, windows=windows,
                        epoch_windows=windows, mixture={"weights": "natural", "total": windows}, sources=[src],
                        shards=entries, megatron_data_path=["1.0", str(root / shard_name(0))])
    write_manifest(root, manifest)
    return root
