"""The train loop: build, parallelize, resume, step, log, checkpoint.

One step = `accum` micro-batches forward/backward on each rank (the global batch), gradient clipping, AdamW.
Logged to RUN/metrics.jsonl (rank 0), one line per `log_every` steps:
    step, loss (mean over the global batch), lr, grad_norm, tokens (seen so far), tokens_per_s_per_gpu,
    mfu (model FLOPs utilisation; null where the device's peak is unknown), tflops_per_gpu, peak_mem_gib,
    step_s (mean over the interval), epoch, consumed
"""

from __future__ import annotations

import json
import logging
import math
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from steel_train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from steel_train.config import Config
from steel_train.data import BatchStream, open_source, sample_digest
from steel_train.model import Steel, flops_per_token
from steel_train.model.flops import peak_flops
from steel_train.optim import build_optimizer, lr_at
from steel_train.parallel import init_distributed, parallelize

log = logging.getLogger("steel_train")


class MetricsLog:
    """JSONL lines, appended (a resumed run continues the same file)."""

    def __init__(self, path: Path | None, echo: bool = True):
        self.path, self.echo = path, echo
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict) -> None:
        if self.path is None:
            return
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        if self.echo:
            mfu = f" mfu {record['mfu']:.1%}" if record.get("mfu") is not None else ""
            print(f"step {record['step']:>6}  loss {record['loss']:.4f}  lr {record['lr']:.2e}  "
                  f"gnorm {record['grad_norm']:.3f}  {record['tokens_per_s_per_gpu']:,.0f} tok/s/gpu{mfu}  "
                  f"mem {record['peak_mem_gib']:.2f} GiB", flush=True)


def peak_memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    # the process's peak resident set (Linux reports KiB)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _full(t: torch.Tensor) -> torch.Tensor:
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def build_model(cfg: Config, device: torch.device, vocab_size: int, seq_len: int) -> Steel:
    args = cfg.model.args()
    if vocab_size > args.vocab_size:
        raise ValueError(f"the dataset's vocabulary has {vocab_size} ids, the model's embedding {args.vocab_size} "
                         f"rows: set model.vocab_size")
    if seq_len > args.max_seq_len:
        args = args.with_(max_seq_len=seq_len)
    # Every rank builds the full model from the same seed, then keeps its shard: the initial weights do not
    # depend on the world size.
    torch.manual_seed(cfg.train.seed)
    with torch.device(device):
        return Steel(args)


def train(cfg: Config) -> dict:
    """Run (or resume) the configured training; returns a summary. Collective over the process group."""
    created = not dist.is_initialized()
    rank, world, device = init_distributed(cfg.train.device)
    try:
        return _train(cfg, rank, world, device)
    finally:
        if created and dist.is_initialized():
            dist.destroy_process_group()


def _train(cfg: Config, rank: int, world: int, device: torch.device) -> dict:
    run_dir = Path(cfg.train.run_dir)
    source = open_source(cfg.data.source)
    seq_len = source.seq_len
    model = build_model(cfg, device, source.vocab_size, seq_len)
    args = model.args
    parallelize(model, cfg.parallel, device)
    optimizer = build_optimizer(model, cfg.optim, device)
    stream = BatchStream(source, cfg.data.seed, cfg.data.global_batch, cfg.data.micro_batch, rank, world,
                         prefetch=True)

    step = 0
    ckpt_root = run_dir / "checkpoints"
    latest = latest_checkpoint(ckpt_root)
    if latest is not None:
        saved = load_checkpoint(latest, model, optimizer, {"step": 0, "stream": stream.state_dict()})
        step = int(saved["step"])
        stream.load_state_dict(saved["stream"])
        if rank == 0:
            print(f"resumed from {latest} at step {step} (epoch {stream.state.epoch}, "
                  f"sample {stream.state.consumed}) on {world} rank(s)", flush=True)
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.toml").write_text(cfg.to_toml())
    metrics = MetricsLog(run_dir / "metrics.jsonl" if rank == 0 else None)
    if cfg.data.trace:
        run_dir.mkdir(parents=True, exist_ok=True)
        trace = open(run_dir / f"samples-rank{rank}.jsonl", "a")
    else:
        trace = None

    tokens_per_step = cfg.data.global_batch * seq_len
    flops_tok = flops_per_token(args, seq_len)
    peak = peak_flops(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
    clip = cfg.optim.clip if cfg.optim.clip > 0 else math.inf
    last_ckpt = step
    stop_at = cfg.train.steps if not cfg.train.stop_after else min(cfg.train.steps, step + cfg.train.stop_after)
    if rank == 0:
        print(f"steel-train: {args.n_layers} layers, dim {args.dim}, {sum(p.numel() for p in model.parameters()):,} "
              f"params (sharded count), world {world}, {stream.accum} micro-batch(es) of {cfg.data.micro_batch} "
              f"per rank per step, {tokens_per_step:,} tokens/step, steps {step} -> {stop_at}", flush=True)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    window_t0, window_steps = time.perf_counter(), 0
    losses: list[float] = []
    while step < stop_at:
        step += 1
        lr = lr_at(step, cfg.optim, cfg.train.steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        micro_batches, where = stream.next_step()
        if trace is not None:
            trace.write(json.dumps({"step": step, "rank": rank, **where,
                                    "digests": [sample_digest(s) for mb in micro_batches for s in mb]}) + "\n")
            trace.flush()  # a killed run keeps the trace of the steps it took (checked against a resume)
        loss_sum = torch.zeros((), device=device)
        for block in micro_batches:
            batch = torch.from_numpy(block.astype(np.int64)).to(device, non_blocking=True)
            loss = model(batch[:, :-1], batch[:, 1:])
            (loss / stream.accum).backward()
            loss_sum += loss.detach()
        grad_norm = _full(torch.nn.utils.clip_grad_norm_(model.parameters(), clip))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        window_steps += 1

        if step % cfg.train.log_every == 0 or step == stop_at:
            mean_loss = loss_sum / stream.accum
            if world > 1:
                dist.all_reduce(mean_loss)
                mean_loss /= world
            loss_value = mean_loss.item()  # synchronises
            elapsed = time.perf_counter() - window_t0
            tps = tokens_per_step * window_steps / elapsed / world
            tflops = tps * flops_tok / 1e12
            losses.append(loss_value)
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"loss is {loss_value} at step {step}")
            metrics.write({
                "step": step, "loss": loss_value, "lr": lr, "grad_norm": float(grad_norm),
                "tokens": step * tokens_per_step, "tokens_per_s_per_gpu": tps,
                "mfu": tflops * 1e12 / peak if peak else None, "tflops_per_gpu": tflops,
                "peak_mem_gib": peak_memory_gib(device), "step_s": elapsed / window_steps,
                "epoch": stream.state.epoch, "consumed": stream.state.consumed, "world_size": world,
            })
            window_t0, window_steps = time.perf_counter(), 0

        every = cfg.train.checkpoint_every
        if (every and step % every == 0) or step == stop_at:
            save_checkpoint(ckpt_root, step, model, optimizer,
                            {"step": step, "stream": stream.state_dict()}, keep=cfg.train.keep_checkpoints)
            last_ckpt = step
            window_t0 = time.perf_counter()  # checkpoint time is not training throughput
    stream.close()
    if trace is not None:
        trace.close()
    return {"step": step, "last_checkpoint": last_ckpt, "losses": losses, "world_size": world,
            "stream": stream.state_dict()}


def main_train(cfg: Config) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    train(cfg)
    return 0
