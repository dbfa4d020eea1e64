"""The Steel-LLM paper's Table 2, reproduced and extended: training throughput of steel-1b per kernel and
sharding configuration, on one GPU (or the debug flavor on a CPU, as a smoke run).

    python bench/train_table2.py --device cuda --steps 10 --json $OUT/table2.json      # ~4-5 min on an H100
    python bench/train_table2.py --device cpu                                          # debug flavor, seconds
    python bench/train_table2.py --matrix full --steps 5                               # all 72 combinations

Columns: attention (flash | sdpa | eager) x RoPE (triton | torch) x RMSNorm (triton | torch) x loss
(fused linear+CE | triton CE | torch) x FSDP2 reshard-after-forward (on = ZeRO-3, the paper's "FSDP"; off =
ZeRO-2, the paper's "no share param"), plus rows beyond the paper (torch.compile, a larger micro-batch).

`--matrix ladder` (default) runs the paper's baseline and then turns on one speed-up at a time, keeping each,
then the rows beyond the paper: ~11 configurations, sized to finish in ~5 minutes on one H100. `--matrix full`
runs the whole cartesian product (72 configurations; budget ~15-25 minutes). Rows whose kernel is missing
(flash-attn not installed; Triton absent) are reported as skipped, never silently replaced. A configuration
that runs out of memory is retried at half the micro-batch (the row says so).

Each configuration: bf16 FSDP2 (world size 1: one process, no communication, the sharding code path), AdamW
(fused), random tokens at seq 2048, `--warmup` untimed steps, then `--steps` timed steps. Reported: tokens/s/GPU,
MFU (model FLOPs as steel_train.model.flops counts them: the Soft-MoE experts see 6 slots per sequence; dense
bf16 peak of the device), step time and peak memory allocated. Installs nothing; needs torch (and optionally
triton, flash-attn).
"""

from __future__ import annotations

import os
import sys

# Run as `python bench/train_table2.py`, Python puts bench/ first on the path, where a benchmark module may share a
# standard module's name (a script named like a standard module (bench/tokenize.py, since renamed)): take bench/ off the path before importing anything else.
_BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _BENCH]
sys.path.insert(0, os.path.dirname(_BENCH))

import argparse  # noqa: E402
import gc  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from steel_train.kernels import flash_available  # noqa: E402
from steel_train.kernels.triton_support import triton_importable  # noqa: E402
from steel_train.model import Steel, flops_per_token, model_args  # noqa: E402
from steel_train.model.flops import peak_flops  # noqa: E402
from steel_train.optim import build_optimizer  # noqa: E402
from steel_train.config import OptimConfig, ParallelConfig  # noqa: E402
from steel_train.parallel import init_distributed, parallelize  # noqa: E402


@dataclass
class Row:
    name: str
    attention: str = "eager"
    rope: str = "torch"
    rmsnorm: str = "torch"
    loss: str = "torch"
    reshard: bool = True
    compile: bool = False
    ac: bool = False
    micro_batch: int = 0  # 0: --micro-batch


def ladder(best_attention: str, mb: int) -> list[Row]:
    """The paper's baseline, then one switch at a time (each kept), then rows beyond the paper."""
    rows = [Row("paper baseline (eager, torch kernels, FSDP)"),
            Row("sdpa attention", attention="sdpa"),
            Row("flash-attn attention", attention="flash")]
    a = best_attention
    rows += [Row("+ triton RoPE", attention=a, rope="triton"),
             Row("+ triton RMSNorm", attention=a, rope="triton", rmsnorm="triton"),
             Row("+ triton cross-entropy", attention=a, rope="triton", rmsnorm="triton", loss="triton"),
             Row("+ fused linear cross-entropy", attention=a, rope="triton", rmsnorm="triton", loss="fused"),
             Row("+ no reshard (ZeRO-2)", attention=a, rope="triton", rmsnorm="triton", loss="fused", reshard=False),
             Row("+ 2x micro-batch", attention=a, rope="triton", rmsnorm="triton", loss="fused", reshard=False,
                 micro_batch=2 * mb),
             Row("+ torch.compile", attention=a, rope="triton", rmsnorm="triton", loss="fused", reshard=False,
                 compile=True),
             Row("+ torch.compile, 2x micro-batch", attention=a, rope="triton", rmsnorm="triton", loss="fused",
                 reshard=False, compile=True, micro_batch=2 * mb)]
    return rows


def full_matrix() -> list[Row]:
    rows = []
    for attn, rope, norm, loss, reshard in itertools.product(("flash", "sdpa", "eager"), ("triton", "torch"),
                                                              ("triton", "torch"), ("fused", "triton", "torch"),
                                                              (True, False)):
        rows.append(Row(f"{attn}/{rope}/{norm}/{loss}/{'reshard' if reshard else 'keep'}", attention=attn,
                        rope=rope, rmsnorm=norm, loss=loss, reshard=reshard))
    return rows


def missing_kernel(row: Row, device: torch.device) -> str | None:
    if row.compile and device.type != "cuda":
        return "torch.compile rows run on cuda only (inductor's CPU build takes about a minute per row)"
    if row.attention == "flash" and not (flash_available() and device.type == "cuda"):
        return "flash-attn not installed" if not flash_available() else "flash-attn needs CUDA"
    if "triton" in (row.rope, row.rmsnorm, row.loss):
        if not triton_importable():
            return "triton not installed"
        if device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
            return "triton on a CPU needs TRITON_INTERPRET=1"
    return None


def run_row(row: Row, args, device: torch.device) -> dict:
    mb = row.micro_batch or args.micro_batch
    margs = model_args(args.flavor, attention=row.attention, rope=row.rope, rmsnorm=row.rmsnorm, loss=row.loss,
                       max_seq_len=max(args.seq_len, model_args(args.flavor).max_seq_len))
    pcfg = ParallelConfig(reshard_after_forward=row.reshard, mixed_precision=args.precision,
                          activation_checkpoint=row.ac, compile=row.compile)
    torch.manual_seed(0)
    with torch.device("meta"):
        model = Steel(margs)
    parallelize(model, pcfg, device)
    model.to_empty(device=device)
    model.init_weights(buffer_device=device)
    optimizer = build_optimizer(model, OptimConfig(), device)
    vocab = margs.vocab_size
    gen = torch.Generator(device=device).manual_seed(0)
    batch = torch.randint(0, vocab, (mb, args.seq_len + 1), device=device, generator=gen)

    def step():
        loss = model(batch[:, :-1], batch[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for _ in range(args.warmup):
        loss = step()
    sync()
    warm_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    sync()
    elapsed = time.perf_counter() - t0
    loss_value = float(loss.detach().float().item())
    tokens = mb * args.seq_len * args.steps
    tps = tokens / elapsed
    fpt = flops_per_token(margs, args.seq_len)
    peak = peak_flops(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
    mem = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    del model, optimizer, batch
    return {"tokens_per_s_per_gpu": tps, "mfu": tps * fpt / peak if peak else None,
            "tflops_per_gpu": tps * fpt / 1e12, "step_s": elapsed / args.steps, "warmup_s": warm_s,
            "peak_mem_gib": mem, "micro_batch": mb, "final_loss": loss_value}


def cleanup(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    try:
        torch._dynamo.reset()
    except Exception:
        pass


def fmt(result: dict) -> str:
    if "skipped" in result:
        return f"skipped: {result['skipped']}"
    if "error" in result:
        return f"error: {result['error']}"
    mfu = f"{result['mfu']:.1%}" if result.get("mfu") is not None else "-"
    mem = f"{result['peak_mem_gib']:.1f} GiB" if result.get("peak_mem_gib") is not None else "-"
    note = f" ({result['note']})" if result.get("note") else ""
    return (f"{result['tokens_per_s_per_gpu']:>10,.0f} tok/s/GPU  MFU {mfu:>6}  {result['step_s'] * 1e3:8.1f} ms/step"
            f"  mem {mem:>9}  mb {result['micro_batch']}{note}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cuda", "cpu"])
    p.add_argument("--flavor", default=None, help="steel-1b (default on cuda) | debug (default on cpu)")
    p.add_argument("--seq-len", type=int, default=None, help="default 2048 (cuda), 128 (cpu)")
    p.add_argument("--micro-batch", type=int, default=None, help="sequences per step; default 8 (cuda), 2 (cpu)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per configuration; default 10 (cuda), 2")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first; default 3 (cuda), 1")
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    p.add_argument("--matrix", default="ladder", choices=["ladder", "full"])
    p.add_argument("--only", nargs="*", default=None, help="run only rows whose name contains one of these")
    p.add_argument("--budget-s", type=float, default=0, help="skip the remaining rows after this many seconds")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        print("error: --device cuda but no GPU is visible", file=sys.stderr)
        return 2
    args.flavor = args.flavor or ("steel-1b" if cuda else "debug")
    args.seq_len = args.seq_len or (2048 if cuda else 128)
    args.micro_batch = args.micro_batch or (8 if cuda else 2)
    args.steps = args.steps or (10 if cuda else 2)
    args.warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)

    _, _, device = init_distributed(args.device)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
    best_attention = "flash" if flash_available() and cuda else "sdpa"
    rows = ladder(best_attention, args.micro_batch) if args.matrix == "ladder" else full_matrix()
    if args.only:
        rows = [r for r in rows if any(s in r.name for s in args.only)]
    env = {"device": torch.cuda.get_device_name(device) if cuda else platform.processor() or "cpu",
           "torch": torch.__version__, "triton": _version("triton"), "flash_attn": _version("flash_attn"),
           "flavor": args.flavor, "seq_len": args.seq_len, "steps": args.steps, "warmup": args.warmup,
           "precision": args.precision, "flops_per_token": flops_per_token(model_args(args.flavor), args.seq_len)}
    print(f"# Table 2 on {env['device']}: {args.flavor}, seq {args.seq_len}, torch {env['torch']}, "
          f"triton {env['triton']}, flash-attn {env['flash_attn']}, {len(rows)} configurations", flush=True)
    results, start = [], time.perf_counter()
    for row in rows:
        result: dict
        if args.budget_s and time.perf_counter() - start > args.budget_s:
            result = {"skipped": f"time budget of {args.budget_s:.0f} s spent"}
        elif (why := missing_kernel(row, device)) is not None:
            result = {"skipped": why}
        else:
            result = _run_with_retry(row, args, device)
        results.append({**asdict(row), **result})
        print(f"{row.name:<44} {fmt(result)}", flush=True)
    ran = [r for r in results if "tokens_per_s_per_gpu" in r]
    if ran:
        best = max(ran, key=lambda r: r["tokens_per_s_per_gpu"])
        print(f"# best: {best['name']}: {best['tokens_per_s_per_gpu']:,.0f} tokens/s/GPU "
              f"({best['tokens_per_s_per_gpu'] / 15000:.2f}x the paper's best 15,000)", flush=True)
    print()
    print(markdown(results, env))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"env": env, "results": results}, indent=2))
    return 0


def _run_with_retry(row: Row, args, device: torch.device) -> dict:
    mb = row.micro_batch or args.micro_batch
    note = None
    while mb >= 1:
        try:
            result = run_row(Row(**{**asdict(row), "micro_batch": mb}), args, device)
            if note:
                result["note"] = note
            return result
        except torch.cuda.OutOfMemoryError:
            note = f"OOM at micro-batch {mb}"
            mb //= 2
        except Exception as exc:  # a broken kernel on this device is a result, not the end of the table
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return {"error": f"{type(exc).__name__}: {first[:160]}"}
        finally:
            cleanup(device)
    return {"error": note or "out of memory"}


def markdown(results: list[dict], env: dict) -> str:
    lines = [f"Device: {env['device']}; torch {env['torch']}, triton {env['triton']}, flash-attn "
             f"{env['flash_attn']}; {env['flavor']}, seq {env['seq_len']}, {env['precision']} precision, "
             f"{env['steps']} timed steps after {env['warmup']} warm-up.", "",
             "| configuration | attention | RoPE | RMSNorm | loss | reshard | compile | micro-batch | tokens/s/GPU "
             "| MFU | peak memory |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "tokens_per_s_per_gpu" in r:
            mfu = f"{r['mfu']:.1%}" if r.get("mfu") is not None else "-"
            mem = f"{r['peak_mem_gib']:.1f} GiB" if r.get("peak_mem_gib") is not None else "-"
            figs = f"{r['tokens_per_s_per_gpu']:,.0f} | {mfu} | {mem}"
            if r.get("note"):
                figs = figs.replace(" |", f" ({r['note']}) |", 1)
        else:
            figs = f"{r.get('skipped') or r.get('error')} | | "
        lines.append(f"| {r['name']} | {r['attention']} | {r['rope']} | {r['rmsnorm']} | {r['loss']} | "
                     f"{'on' if r['reshard'] else 'off'} | {'yes' if r['compile'] else 'no'} | "
                     f"{r.get('micro_batch') or ''} | {figs} |")
    return "\n".join(lines)


def _version(module: str) -> str | None:
    try:
        mod = __import__(module)
        return getattr(mod, "__version__", "?")
    except Exception:
        return None


if __name__ == "__main__":
    sys.exit(main())
