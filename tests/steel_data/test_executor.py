"""The local executor end to end: outputs, accounting, worker/shard independence, kill and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from operators import registry
from operators.base import Mapper
from steel_data.executor import JobMismatch, LocalExecutor, RunConfig, read_output
from steel_data.readers import TextMapping
from steel_data.recipe import load_recipe

REPO = Path(__file__).resolve().parents[2]
TEXT_RECIPE = REPO / "recipes" / "steel-text.yaml"


def recipe_for(sample_dir):
    return load_recipe(TEXT_RECIPE, {"perplexity_filter": {"model_dir": str(sample_dir / "models")}})


def run(sample_dir, outdir, **kw):
    cfg = RunConfig(recipe=recipe_for(sample_dir), inputs=[str(sample_dir / "input")], outdir=outdir, **kw)
    return LocalExecutor(cfg).run()


def output_rows(outdir: Path) -> list[tuple[str, str]]:
    t = read_output(outdir, ["id", "text"])
    return list(zip(t.column("id").to_pylist(), t.column("text").to_pylist()))


@pytest.fixture(scope="module")
def reference(sample_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    result = run(sample_dir, out, workers=1, shard_size=100)
    return out, result


def test_accounting_adds_up(reference):
    out, result = reference
    stats = json.loads((out / "stats.json").read_text())
    acc = stats["accounting"]
    assert acc["balanced"]
    assert acc["input_records"] == stats["output_docs"] + sum(acc["dropped_by_op"].values()) + acc["quarantined"]
    assert acc["quarantined"] == 3  # the three planted broken records
    assert stats["output_docs"] == len(output_rows(out)) > 0
    ops = {op["label"]: op for op in stats["ops"]}
    assert ops["chinese_convert_mapper"]["modified"] > 0
    assert ops["words_num_filter"]["dropped"] > 0
    for op in stats["ops"]:
        if op["kind"] == "filter":
            assert op["docs_in"] == op["docs_out"] + op["dropped"] + op["errors"]
            assert op["distribution"]["count"] == op["docs_in"] - op["errors"]
            assert len(op["distribution"]["histogram"]["counts"]) >= 1
    # consecutive ops chain: what one op lets out, the next takes in
    seq = stats["ops"]
    for a, b in zip(seq, seq[1:]):
        assert a["docs_out"] == b["docs_in"]
    assert stats["dedup"]["duplicates_dropped"] == ops["document_simhash_deduplicator"]["dropped"] > 0
    examples = stats["dedup"]["cluster_examples"]
    assert examples and examples[0]["size"] == stats["dedup"]["largest_cluster"]
    assert all(len({m["simhash"] for m in c["members"]}) >= 1 and len(c["members"]) >= 2 for c in examples)


def test_quarantine_and_dropped_samples_are_written(reference):
    out, _ = reference
    q = [json.loads(line) for f in (out / "quarantine").glob("*.jsonl") for line in f.read_text().splitlines()]
    assert len(q) == 3
    assert {"file", "line", "reason"} <= set(q[0])
    dropped = [json.loads(line) for line in (out / "dropped" / "words_num_filter.jsonl").read_text().splitlines()]
    assert dropped and all("value" in d and "id" in d for d in dropped)
    op = registry.build("words_num_filter", {"lang": "zh", "min_num": 10, "max_num": 10000})
    assert all(not op.keeps(d["value"]) for d in dropped)


def test_output_is_independent_of_workers_and_shard_size(reference, sample_dir, tmp_path):
    ref_out, _ = reference
    run(sample_dir, tmp_path / "w2", workers=2, shard_size=37, batch_size=10)
    assert output_rows(tmp_path / "w2") == output_rows(ref_out)
    a = json.loads((ref_out / "stats.json").read_text())
    b = json.loads((tmp_path / "w2" / "stats.json").read_text())
    assert [(o["docs_in"], o["docs_out"], o["modified"]) for o in a["ops"]] == [
        (o["docs_in"], o["docs_out"], o["modified"]) for o in b["ops"]
    ]


def test_rerun_skips_finished_shards(reference, sample_dir, tmp_path):
    out = tmp_path / "again"
    first = run(sample_dir, out, workers=1, shard_size=100)
    second = run(sample_dir, out, workers=1, shard_size=100)
    assert first.shards_done_before == 0 and second.shards_done_before > 0
    assert output_rows(out) == output_rows(reference[0])


def test_a_different_job_in_the_same_outdir_is_refused(sample_dir, tmp_path):
    run(sample_dir, tmp_path / "o", workers=1, shard_size=100)
    with pytest.raises(JobMismatch):
        run(sample_dir, tmp_path / "o", workers=1, shard_size=50)


def test_crash_leftovers_are_recovered(reference, sample_dir, tmp_path):
    """A state as a kill leaves it: some markers missing, partial temp files, no final parts."""
    out = tmp_path / "crashed"
    run(sample_dir, out, workers=1, shard_size=100)
    work = out / "_work"
    for marker in list((work / "shards").glob("*.done"))[::2]:
        marker.unlink()
    (work / "shards" / ".00001.parquet.tmp-999").write_bytes(b"partial")
    for f in (work / "final").glob("*.done"):
        f.unlink()
    (work / "dedup.done").unlink()
    for f in (out / "data").glob("*"):
        f.unlink()
    (out / "stats.json").unlink()
    run(sample_dir, out, workers=2, shard_size=100)
    assert output_rows(out) == output_rows(reference[0])
    assert json.loads((out / "stats.json").read_text())["accounting"]["balanced"]


def test_killed_process_resumes_to_the_same_output(reference, sample_dir, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "steel_data.cli", "run", str(TEXT_RECIPE), "-i", str(sample_dir / "input"),
           "-o", str(out), "--workers", "1", "--shard-size", "20", "--no-progress",
           "--set", f"perplexity_filter.model_dir={sample_dir / 'models'}"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    shards = out / "_work" / "shards"
    while time.time() < deadline and (not shards.exists() or len(list(shards.glob("*.done"))) < 3):
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_at_kill = len(list(shards.glob("*.done")))
    assert 0 < done_at_kill < 32, "the kill should land mid-run"
    rerun = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    stats = json.loads((out / "stats.json").read_text())
    assert stats["accounting"]["balanced"]
    assert output_rows(out) == output_rows(reference[0])


def test_a_record_that_breaks_an_op_is_quarantined_alone(sample_dir, tmp_path):
    class Fragile(Mapper):
        name = "test_fragile_mapper"

        def map_text(self, text):
            if "乾" in text:
                raise RuntimeError("boom")
            return text

    registry.register(Fragile)
    try:
        inp = tmp_path / "in.jsonl"
        inp.write_text("\n".join(json.dumps({"text": t}) for t in ["乾燥的天气 " * 3, "fine text here " * 3, "ok"]))
        recipe = load_recipe({"process": [{"test_fragile_mapper": None}, {"text_length_filter": {"min_len": 5}}]})
        res = LocalExecutor(RunConfig(recipe=recipe, inputs=[str(inp)], outdir=tmp_path / "o", workers=1)).run()
    finally:
        registry.unregister("test_fragile_mapper")
    acc = res.stats["accounting"]
    assert acc == {"input_records": 3, "output_docs": 1, "dropped_by_op": {"text_length_filter": 1},
                   "quarantined": 1, "balanced": True}
    (q,) = [json.loads(line) for line in (tmp_path / "o" / "quarantine" / "00000.jsonl").read_text().splitlines()]
    assert q["op"] == "test_fragile_mapper" and "boom" in q["reason"]


def test_text_template_from_the_cli(tmp_path):
    inp = tmp_path / "baike.json"
    inp.write_text(json.dumps([{"title": "标题一", "summary": "这是摘要内容。" * 3}]))
    out = tmp_path / "o"
    from steel_data.cli import main

    code = main(["run", str(REPO / "recipes" / "steel-code.yaml"), "-i", str(inp), "-o", str(out),
                 "--text-template", "{title}\n{summary}", "--skip-op", "alphanumeric_filter", "--no-progress"])
    assert code == 0
    stats = json.loads((out / "stats.json").read_text())
    assert stats["accounting"]["input_records"] == 1


def test_pool_workers_build_heavy_operators_once(sample_dir, tmp_path, monkeypatch):
    """Heavy operators are set up once, before the workers fork, however many shards they run."""
    from operators.mappers.normalize import ChineseConvertMapper

    log = tmp_path / "setups.log"
    original = ChineseConvertMapper.setup

    def counting_setup(self):
        with open(log, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        original(self)

    monkeypatch.setattr(ChineseConvertMapper, "setup", counting_setup)
    run(sample_dir, tmp_path / "o", workers=2, shard_size=40)
    pids = log.read_text().split()
    shards = len(list((tmp_path / "o" / "_work" / "shards").glob("*.done")))
    assert shards > 4 and len(pids) == 1
