"""Throughput of Steel's cleaning: per op and whole recipe, 1 and 2 workers, and peak RSS as input grows.

    .venv/bin/python bench/pipeline.py [--recipe text|code|both] [--scale 1 4] [--repeat 3] [--workers-scale 1 4]

Inputs are the unified Steel-LLM source samples from ../shared/corpus/steel (see bench/corpus.py), the
same documents bench/parity.py gives Data-Juicer. Perplexity uses tiny models built from the input (the
real Data-Juicer models are a download); the tokenized alphanumeric filter is left out of the code recipe
for the same reason. Figures: docs/s and MB/s of wall time for the whole `steel run` (process start,
reading, cleaning, dedup, writing), per-op CPU seconds and docs/s from stats.json, and the peak RSS of
the largest process.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import build_inputs  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
STEEL = [sys.executable, "-m", "steel_data.cli"]


def run_steel(recipe: str, inputs: list[Path], out: Path, workers: int, extra: list[str]) -> tuple[float, dict, int]:
    cmd = STEEL + ["run", recipe, "-i", *map(str, inputs), "-o", str(out), "--workers", str(workers),
                   "--no-progress", "--overwrite", *extra]
    # A wrapper process reports the peak RSS of the largest process under it (RUSAGE_CHILDREN is a
    # high-water mark, so each run needs a fresh parent to be measured alone).
    wrapper = [sys.executable, "-c", "import resource, subprocess, sys; "
               "rc = subprocess.run(sys.argv[1:]).returncode; "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(rc)"]
    start = time.perf_counter()
    proc = subprocess.run(wrapper + cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(proc.stderr)
    rss_kb = int(proc.stderr.strip().splitlines()[-1])
    return wall, json.loads((out / "stats.json").read_text()), rss_kb


def replicate(path: Path, times: int, dest: Path) -> Path:
    data = path.read_bytes()
    dest.write_bytes(data * times)
    return dest


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipe", choices=["text", "code", "both"], default="both")
    ap.add_argument("--scale", type=int, nargs="*", default=[1, 4])
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "steel" / "parity"))
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs per configuration, 1 and 2 workers interleaved; the best wall time counts")
    ap.add_argument("--workers-scale", type=int, nargs="*", default=[1],
                    help="input sizes (times the corpus) for the 1- vs 2-worker comparison")
    args = ap.parse_args()
    inputs = build_inputs(Path(args.cache))
    tmp = Path(tempfile.mkdtemp(prefix="steel-bench-"))
    from steel_data.lm import build_tiny_models

    texts = [json.loads(line)["text"] for line in open(inputs["text"], encoding="utf-8")][:2000]
    models = build_tiny_models(texts, tmp / "models", lang="zh", vocab_size=2000)
    recipes = {"text": (str(REPO / "recipes/steel-text.yaml"), ["--set", f"perplexity_filter.model_dir={models}"]),
               "code": (str(REPO / "recipes/steel-code.yaml"), ["--skip-op", "alphanumeric_filter",
                                                                 "--shard-size", "512"])}
    chosen = ["text", "code"] if args.recipe == "both" else [args.recipe]
    for name in chosen:
        recipe, extra = recipes[name]
        if name == "code":
            # --skip-op removes both alphanumeric filters; restore the character-based one via a recipe copy
            import yaml

            data = yaml.safe_load(Path(recipe).read_text())
            data["process"] = [e for e in data["process"] if not ("alphanumeric_filter" in e
                                                                   and e["alphanumeric_filter"]["tokenization"])]
            recipe = str(tmp / "code-no-tokenizer.yaml")
            Path(recipe).write_text(yaml.safe_dump(data, allow_unicode=True))
            extra = ["--shard-size", "512"]
        src = inputs[name]
        mb = src.stat().st_size / 1e6
        print(f"\n== {name} recipe on {src.name}: {mb:.1f} MB")
        per_op = None
        for k in args.workers_scale:
            src_k = src if k == 1 else replicate(src, k, tmp / f"{name}x{k}-workers.jsonl")
            walls: dict[int, list[float]] = {1: [], 2: []}
            rows = {}
            for _ in range(args.repeat):
                for workers in (1, 2):
                    wall, stats, rss = run_steel(recipe, [src_k], tmp / f"{name}-w{workers}", workers, extra)
                    walls[workers].append(wall)
                    n = stats["accounting"]["input_records"]
                    if wall <= min(walls[workers]):
                        rows[workers] = (workers, n, wall, n / wall, mb * k / wall, rss / 1024,
                                         stats["wall_seconds"])
                    if workers == 1 and per_op is None:
                        per_op = stats["ops"]
            print(f"\n{k}x input, best of {args.repeat} (all runs: "
                  + "; ".join(f"{w} worker(s) " + ", ".join(f"{x:.2f}" for x in walls[w]) for w in (1, 2)) + ")")
            print(f"{'workers':>8s} {'docs':>8s} {'wall s':>8s} {'run s':>7s} {'docs/s':>9s} {'MB/s':>7s} "
                  f"{'peak RSS MB':>12s}")
            for w, n, wall, dps, mbs, rss, run_s in rows.values():
                print(f"{w:8d} {n:8d} {wall:8.2f} {run_s:7.2f} {dps:9.0f} {mbs:7.2f} {rss:12.0f}")
            print(f"2-worker speed-up (whole command / executor run): {rows[1][2] / rows[2][2]:.2f}x / "
                  f"{rows[1][6] / rows[2][6]:.2f}x")
        print(f"\n{'op':34s} {'docs in':>8s} {'CPU s':>7s} {'docs/s':>10s} {'MB/s':>7s}")
        for op in per_op:
            dps = op["docs_in"] / op["seconds"] if op["seconds"] else float("inf")
            mbs = op["chars_in"] * 3 / 1e6 / op["seconds"] if op["seconds"] and op["chars_in"] else float("nan")
            print(f"{op['label']:34s} {op['docs_in']:8d} {op['seconds']:7.2f} {dps:10.0f} {mbs:7.1f}")
        if name == "text" and args.scale:
            print(f"\npeak RSS as the input grows (1 worker, {name} recipe):")
            for k in args.scale:
                big = replicate(src, k, tmp / f"{name}x{k}.jsonl")
                wall, stats, rss = run_steel(recipe, [big], tmp / f"{name}-x{k}", 1, extra)
                print(f"  {k}x input ({big.stat().st_size / 1e6:.0f} MB, {stats['accounting']['input_records']} docs): "
                      f"peak RSS {rss / 1024:.0f} MB, {wall:.1f} s")


if __name__ == "__main__":
    main()
