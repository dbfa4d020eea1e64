"""The Ray executor: the local executor's output and statistics, worker state built once, resume, and a
real two-node cluster (`ray start` nodes on this machine) losing a node, then its driver, mid-job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from steel_data.executor import LocalExecutor, RunConfig, read_output
from steel_data.readers import TextMapping
from steel_data.recipe import load_recipe

pytest.importorskip("ray", reason="the [ray] extra is not installed")

REPO = Path(__file__).resolve().parents[2]
TEXT_RECIPE = REPO / "recipes" / "steel-text.yaml"
CODE_RECIPE = REPO / "recipes" / "steel-code.yaml"
# statistics that measure time, not what happened; and the quantile sketch's estimates (KLL compacts at
# random, so two local runs differ there too: its exact count, min and max are compared)
NOT_COMPARED = {"seconds", "docs_per_second", "wall_seconds", "read_seconds", "quantiles", "histogram",
                "executor", "outputs"}


def text_recipe(models: Path):
    return load_recipe(TEXT_RECIPE, {"perplexity_filter": {"model_dir": str(models)}})


def rows(outdir: Path) -> list[dict]:
    return read_output(outdir).to_pylist()


def comparable(stats: dict) -> dict:
    """stats.json less timings, sketch estimates, paths and the executor's own section."""
    def strip(obj):
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items() if k not in NOT_COMPARED}
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        return obj
    return strip(stats)


def files(outdir: Path, sub: str) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((outdir / sub).glob("*"))}


def run_both(tmp_path: Path, recipe, inputs: list[str], mapping=None, **kw):
    from steel_data.ray_executor import RayExecutor

    mapping = mapping or TextMapping(text_key=recipe.text_key)
    local = LocalExecutor(RunConfig(recipe=recipe, inputs=inputs, outdir=tmp_path / "local", mapping=mapping,
                                    workers=2, **kw)).run()
    ray_run = RayExecutor(RunConfig(recipe=recipe, inputs=inputs, outdir=tmp_path / "ray", mapping=mapping,
                                    workers=2, **kw)).run()
    return local, ray_run


def assert_identical(tmp_path: Path) -> tuple[dict, dict]:
    a, b = tmp_path / "local", tmp_path / "ray"
    assert rows(a) == rows(b)
    sa, sb = (json.loads((d / "stats.json").read_text()) for d in (a, b))
    assert comparable(sa) == comparable(sb)
    assert files(a, "quarantine") == files(b, "quarantine")
    assert files(a, "dropped") == files(b, "dropped")
    return sa, sb


def test_same_output_and_statistics_as_local(sample_dir, ray_driver, tmp_path):
    recipe = text_recipe(sample_dir / "models")
    local, ray_run = run_both(tmp_path, recipe, [str(sample_dir / "input")], shard_size=37, batch_size=16)
    sa, sb = assert_identical(tmp_path)
    assert sb["dedup"]["duplicates_dropped"] > 0 and sb["accounting"]["balanced"]
    ex = sb["executor"]
    assert ex["kind"] == "ray" and ex["nodes"] >= 1
    shards = sb["shards"]
    assert sum(w["shards"] for w in ex["workers"]) == shards > len(ex["workers"])
    # heavy operator state (OpenCC, KenLM, ...) is built once per worker, however many shards it runs
    assert all(w["ops_built"] <= len(recipe.ops) for w in ex["workers"])
    assert any(w["shards"] > 1 for w in ex["workers"])
    assert 0 < ex["peak_worker_rss_mb"] < 1500
    assert ex["dedup"]["partitions"] >= 2


def test_a_worker_over_its_memory_budget_drops_its_state(sample_dir, ray_driver, tmp_path):
    """`worker_memory`: reserved per task, and a worker past it rebuilds its operators for the next shard."""
    from steel_data.ray_executor import RayExecutor

    recipe = text_recipe(sample_dir / "models")
    cfg = RunConfig(recipe=recipe, inputs=[str(sample_dir / "input")], outdir=tmp_path / "o", shard_size=100,
                    workers=1)
    stats = RayExecutor(cfg, worker_memory=32 * 2**20).run().stats  # below any Python process: always over
    assert stats["executor"]["worker_memory_mb"] == 32 and stats["accounting"]["balanced"]
    busy = max(stats["executor"]["workers"], key=lambda w: w["shards"])
    assert busy["shards"] > 1 and busy["ops_built"] == busy["shards"] * len(recipe.ops)


def test_resumes_from_what_a_crash_left(sample_dir, ray_driver, tmp_path):
    from steel_data.ray_executor import RayExecutor

    cfg = RunConfig(recipe=text_recipe(sample_dir / "models"), inputs=[str(sample_dir / "input")],
                    outdir=tmp_path / "ray", shard_size=50, workers=2)
    first = RayExecutor(cfg).run()
    reference = rows(tmp_path / "ray")
    work = tmp_path / "ray" / "_work"
    for marker in sorted((work / "shards").glob("*.done"))[::2]:
        marker.unlink()
    for f in [*(work / "final").glob("*.done"), work / "dedup.done", *(tmp_path / "ray" / "data").glob("*")]:
        f.unlink()
    second = RayExecutor(cfg).run()
    assert first.shards_done_before == 0 and second.shards_done_before > 0
    assert rows(tmp_path / "ray") == reference
    assert second.stats["accounting"]["balanced"]


def test_a_run_started_locally_finishes_on_ray(sample_dir, ray_driver, tmp_path):
    """The plan and markers are the executor's common ground: a job resumes on either."""
    from steel_data.ray_executor import RayExecutor

    cfg = RunConfig(recipe=text_recipe(sample_dir / "models"), inputs=[str(sample_dir / "input")],
                    outdir=tmp_path / "o", shard_size=100, workers=1)
    LocalExecutor(cfg).run()
    reference = rows(tmp_path / "o")
    for marker in list((tmp_path / "o" / "_work" / "shards").glob("*.done"))[:3]:
        marker.unlink()
    (tmp_path / "o" / "_work" / "dedup.done").unlink()
    assert RayExecutor(cfg).run().shards_done_before > 0
    assert rows(tmp_path / "o") == reference


def test_a_shard_that_fails_fails_the_job_with_its_own_error(sample_dir, ray_driver, tmp_path):
    from steel_data.ray_executor import RayExecutor

    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps({"text": f"document number {i} " * 5}) for i in range(20)))
    cfg = RunConfig(recipe=load_recipe(CODE_RECIPE, skip_ops={"alphanumeric_filter"}), inputs=[str(src)],
                    outdir=tmp_path / "o", shard_size=5, workers=2)
    RayExecutor(cfg).run()
    for marker in (tmp_path / "o" / "_work" / "shards").glob("*.done"):
        marker.unlink()
    src.unlink()  # the plan stays, the input is gone: every shard task fails reading it
    with pytest.raises(OSError):
        RayExecutor(cfg).run()


def test_cli(sample_dir, ray_driver, tmp_path, capsys):
    from steel_data.cli import main

    out = tmp_path / "cli"
    code = main(["run", str(TEXT_RECIPE), "-i", str(sample_dir / "input"), "-o", str(out), "--executor", "ray",
                 "--no-progress", "--set", f"perplexity_filter.model_dir={sample_dir / 'models'}"])
    assert code == 0, capsys.readouterr().err
    stats = json.loads((out / "stats.json").read_text())
    assert stats["executor"]["kind"] == "ray" and stats["accounting"]["balanced"]


# -- the shared corpus: both recipes ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus_lm(corpus, tmp_path_factory):
    from steel_data.lm import build_tiny_models

    with open(corpus / "steel" / "sky_2021-31_zh_head_0000_sample.jsonl", encoding="utf-8") as fh:
        texts = [json.loads(line)["text"] for _, line in zip(range(200), fh)]
    return build_tiny_models(texts, tmp_path_factory.mktemp("lm"), lang="zh", vocab_size=3000)


@pytest.mark.corpus
def test_text_recipe_identical_on_the_corpus(corpus, corpus_lm, ray_driver, tmp_path):
    recipe = text_recipe(corpus_lm)
    inputs = [str(corpus / "steel" / "sky_2021-31_zh_head_0000_sample.jsonl")]
    run_both(tmp_path, recipe, inputs, shard_size=200)
    _, stats = assert_identical(tmp_path)
    assert stats["dedup"]["fingerprints"] > 0 and stats["output_docs"] > 0


@pytest.mark.corpus
def test_code_recipe_identical_on_the_corpus(corpus, ray_driver, tmp_path):
    recipe = load_recipe(CODE_RECIPE, skip_ops={"alphanumeric_filter"})
    inputs = [str(corpus / "steel" / "starcode_python_train-00000-of-00059_python_sample.parquet")]
    run_both(tmp_path, recipe, inputs, mapping=TextMapping(text_key="text", source_key="content"), shard_size=100)
    _, stats = assert_identical(tmp_path)
    assert stats["dedup"]["fingerprints"] > 0 and stats["output_docs"] > 0


# -- two nodes ----------------------------------------------------------------------------------------------
def cli_job(address: str, sample_dir: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "steel_data.cli", "run", str(TEXT_RECIPE), "-i", str(sample_dir / "input"),
            "-o", str(out), "--shard-size", "2", "--no-progress", "--executor", "ray", "--ray-address", address,
            "--set", f"perplexity_filter.model_dir={sample_dir / 'models'}"]


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the job ended (rc {proc.returncode}) before {what}: {proc.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def finished_by_node(out: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for f in (out / "_work" / "shards").glob("*.worker.json"):
        try:
            node = json.loads(f.read_text())["node"]
        except (OSError, ValueError):
            continue
        counts[node] = counts.get(node, 0) + 1
    return counts


@pytest.fixture(scope="module")
def sample_reference(sample_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    LocalExecutor(RunConfig(recipe=text_recipe(sample_dir / "models"), inputs=[str(sample_dir / "input")],
                            outdir=out, shard_size=100, workers=2)).run()
    return rows(out)


@pytest.mark.timeout(600)
def test_two_nodes_a_node_dies_mid_job_and_the_job_completes(ray_driver, sample_dir, sample_reference, tmp_path):
    import ray

    nodes = ray_driver
    second = nodes.add_node(num_cpus=1)
    nodes.wait_for_nodes(2, lambda: sum(n["Alive"] for n in ray.nodes()))
    out = tmp_path / "job"
    env = dict(os.environ, RAY_AUTH_MODE="disabled")
    proc = subprocess.Popen(cli_job(nodes.address, sample_dir, out), cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # the kill lands once both nodes have finished shards, and while shards are still to do
        wait_for(lambda: len(finished_by_node(out)) >= 2, 300, "shards done on both nodes", proc)
        time.sleep(0.5)  # the second node now runs shards at full speed
        shards_total = len(json.loads((out / "_work" / "plan.json").read_text())["shards"])
        done_at_kill = sum(finished_by_node(out).values())
        nodes.kill_node(second)
        stdout, stderr = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    assert done_at_kill < shards_total, "the node should die mid-job"
    stats = json.loads((out / "stats.json").read_text())
    assert stats["executor"]["nodes"] == 2
    assert stats["accounting"]["balanced"]
    assert rows(out) == sample_reference
    # and the driver dies: the same command resumes from the finished shards
    out2 = tmp_path / "job2"
    proc = subprocess.Popen(cli_job(nodes.address, sample_dir, out2), cwd=REPO, env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: sum(finished_by_node(out2).values()) >= 4, 300, "four finished shards", proc)
    finally:
        proc.kill()
        proc.wait()
    done = len(list((out2 / "_work" / "shards").glob("*.done")))
    assert 0 < done < shards_total
    rerun = subprocess.run(cli_job(nodes.address, sample_dir, out2), cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=400)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert rows(out2) == sample_reference
    assert json.loads((out2 / "stats.json").read_text())["accounting"]["balanced"]


def test_only_the_ray_modules_import_ray():
    code = ("import sys, steel_data.cli, steel_data.executor, steel_data.dedup_distributed, steel_data.ray_nodes\n"
            "assert 'ray' not in sys.modules, 'ray imported by a light module'")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
