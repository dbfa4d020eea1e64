"""The loop: config, schedule, the rank/step split of the stream, exact resume, FSDP2 on 2 gloo processes against a
single-process reference, resume on another world size, and parallelism switches that must not change the math."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from steel_train.config import OptimConfig, load_config
from steel_train.data import BatchStream, open_source, sample_digest
from steel_train.optim import lr_at

from .shardset import make_shards

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return make_shards(tmp_path_factory.mktemp("shards"), vocab_size=512, seq_len=32, docs=60)


def base_overrides(shards: Path, run_dir: Path, steps: int = 6) -> list[str]:
    return ["model.flavor=debug", f"data.source={shards}", f"train.run_dir={run_dir}", f"train.steps={steps}",
            "train.log_every=1", "train.checkpoint_every=0", "data.global_batch=8", "data.micro_batch=2",
            "optim.warmup_steps=2", "optim.lr=3e-3", "train.device=cpu"]


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# -- config -------------------------------------------------------------------------------------------------
def test_config_from_toml_and_overrides(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[model]\nflavor = "debug"\nloss = "fused"\n[parallel]\nreshard_after_forward = false\n'
                    '[optim]\nlr = 1e-3\n[data]\nglobal_batch = 16\n')
    cfg = load_config(path, ["optim.warmup_steps=7", "parallel.activation_checkpoint=true"])
    assert (cfg.model.flavor, cfg.model.loss, cfg.optim.lr, cfg.data.global_batch) == ("debug", "fused", 1e-3, 16)
    assert cfg.parallel.reshard_after_forward is False and cfg.parallel.activation_checkpoint is True
    assert cfg.optim.warmup_steps == 7 and cfg.optim.beta2 == 0.95 and cfg.optim.weight_decay == 0.05
    again = tmp_path / "again.toml"
    again.write_text(cfg.to_toml())
    assert load_config(again).to_dict() == cfg.to_dict()


@pytest.mark.parametrize("override, message", [
    ("optim.lrr=1", "unknown field optim.lrr"), ("optimizer.lr=1", "unknown config section"),
    ("optim.lr=fast", "expected float"), ("model.attention=xformers", "model.attention"),
    ("parallel.mixed_precision=fp8", "mixed_precision"), ("train.steps", "section.field=value"),
])
def test_config_refuses_bad_settings(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, [override])


def test_lr_warmup_then_cosine():
    cfg = OptimConfig(lr=3e-4, min_lr=3e-5, warmup_steps=10)
    assert lr_at(5, cfg, 110) == pytest.approx(1.5e-4)
    assert lr_at(10, cfg, 110) == pytest.approx(3e-4)
    assert lr_at(60, cfg, 110) == pytest.approx((3e-4 + 3e-5) / 2)
    assert lr_at(110, cfg, 110) == pytest.approx(3e-5)
    assert lr_at(500, cfg, 110) == pytest.approx(3e-5)


# -- the stream ---------------------------------------------------------------------------------------------
def test_ranks_split_each_global_batch_the_same_way_on_any_world_size(shards):
    source = open_source(str(shards))
    def global_batches(world: int, steps: int) -> list[list[str]]:
        streams = [BatchStream(source, 7, 8, 2, rank, world) for rank in range(world)]
        out = []
        for _ in range(steps):
            parts = [s.next_step()[0] for s in streams]
            out.append(sorted(sample_digest(x) for micro in parts for mb in micro for x in mb))
        return out
    one, two, four = global_batches(1, 12), global_batches(2, 12), global_batches(4, 12)
    assert one == two == four
    # and they are the source's samples, in order, rolling into the next epoch without a partial step
    per_epoch = source.epoch_length // 8
    expect = [sorted(sample_digest(x) for x in source.samples(7, k // per_epoch, (k % per_epoch) * 8, 8))
              for k in range(12)]
    assert one == expect
    assert per_epoch < 12  # the test crossed an epoch


def test_batch_stream_refuses_uneven_split(shards):
    with pytest.raises(ValueError, match="not a multiple"):
        BatchStream(open_source(str(shards)), 0, 8, 3, 0, 1)


# -- the loop, one process -----------------------------------------------------------------------------------
def test_resume_continues_the_loss_curve_exactly(shards, tmp_path):
    from steel_train.train import train

    a, b = tmp_path / "a", tmp_path / "b"
    train(load_config(None, base_overrides(shards, a)))
    first = train(load_config(None, base_overrides(shards, b) + ["train.stop_after=3"]))
    assert first["step"] == 3
    second = train(load_config(None, base_overrides(shards, b)))
    assert second["step"] == 6
    la, lb = metrics(a), metrics(b)
    assert [m["step"] for m in lb] == [1, 2, 3, 4, 5, 6]
    assert [m["loss"] for m in la] == [m["loss"] for m in lb]  # bit for bit
    assert [m["grad_norm"] for m in la] == [m["grad_norm"] for m in lb]
    assert la[-1]["loss"] < la[0]["loss"]
    for m in la:
        assert m["tokens_per_s_per_gpu"] > 0 and m["peak_mem_gib"] > 0 and "mfu" in m
    assert m["lr"] == pytest.approx(lr_at(6, load_config(None, base_overrides(shards, a)).optim, 6))


def test_checkpoint_holds_the_stream_state(shards, tmp_path):
    import torch.distributed.checkpoint as dcp

    from steel_train.checkpoint import list_checkpoints
    from steel_train.train import train

    train(load_config(None, base_overrides(shards, tmp_path, steps=4) + ["train.checkpoint_every=2",
                                                                          "train.keep_checkpoints=1"]))
    ckpts = list_checkpoints(tmp_path / "checkpoints")
    assert [s for s, _ in ckpts] == [4]  # older ones pruned
    state = {"train": {"step": 0, "stream": {"epoch": 0, "consumed": 0}}}
    dcp.load(state, checkpoint_id=str(ckpts[0][1]))
    assert state["train"]["step"] == 4
    expected = BatchStream(open_source(str(shards)), 1234, 8, 2)
    for _ in range(4):
        expected.next_step()
    assert state["train"]["stream"] == expected.state_dict()


@pytest.mark.parametrize("switch", ["parallel.activation_checkpoint=true", "parallel.reshard_after_forward=false",
                                    "model.loss=fused"])
def test_switches_that_must_not_change_the_math(shards, tmp_path, switch):
    from steel_train.train import train

    ref = train(load_config(None, base_overrides(shards, tmp_path / "ref", steps=3)))
    other = train(load_config(None, base_overrides(shards, tmp_path / "x", steps=3) + [switch]))
    np.testing.assert_allclose(other["losses"], ref["losses"], rtol=1e-5, atol=1e-6)


# -- two processes (gloo) ------------------------------------------------------------------------------------
def torchrun(nproc: int, overrides: list[str], timeout: int = 120) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "steel_train.cli"] + [f"--set={o}" for o in overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def traced_steps(run_dir: Path) -> dict[int, list[str]]:
    """step -> the sorted sample digests of the whole global batch, from every rank's trace."""
    steps: dict[int, list[str]] = {}
    for path in run_dir.glob("samples-rank*.jsonl"):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            steps.setdefault(rec["step"], []).extend(rec["digests"])
    return {k: sorted(v) for k, v in steps.items()}


def test_fsdp_two_processes_match_one_and_resume_on_another_world_size(shards, tmp_path):
    """Run A: one process, 6 steps. Run B: two gloo processes (FSDP2 shards every block), 6 steps: the same loss
    curve within tolerance. Run C: one process for 3 steps, then resumed on two processes: the same curve, and
    every step trained on the same global batch as A."""
    from steel_train.train import train

    trace = ["data.trace=true"]
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    train(load_config(None, base_overrides(shards, a) + trace))
    torchrun(2, base_overrides(shards, b) + trace)
    train(load_config(None, base_overrides(shards, c) + trace + ["train.stop_after=3"]))
    out = torchrun(2, base_overrides(shards, c) + trace)
    assert "resumed from" in out.stdout and "on 2 rank(s)" in out.stdout

    la, lb, lc = (np.array([m["loss"] for m in metrics(r)]) for r in (a, b, c))
    np.testing.assert_allclose(lb, la, rtol=2e-5, atol=1e-5)
    np.testing.assert_allclose(lc, la, rtol=2e-5, atol=1e-5)
    assert [m["world_size"] for m in metrics(c)] == [1, 1, 1, 2, 2, 2]
    assert traced_steps(a) == traced_steps(b) == traced_steps(c)
    assert len(traced_steps(a)) == 6
