"""The Ray executor against the local executor: same corpus, same recipe, same sharding, same output.

    .venv/bin/python bench/ray.py [--recipe text|code] [--scale 2] [--shard-size 500] [--repeat 2]

Configurations, each a fresh `steel run` process:
  local 1w / 2w     --workers N (forked worker processes)
  ray 1w / 2w       --executor ray --workers N: the run starts a Ray instance with N CPUs on this machine
  ray 2 nodes       --executor ray --ray-address: two nodes started with `ray start` on this machine
                    (1 CPU and a 256 MiB object store each, ports of their own; steel_data.ray_nodes)

Figures: "run s" is the executor's own wall time from planning to stats.json (stats.json `wall_seconds`:
for Ray it starts once the driver is connected); "start-up s" is Ray's: starting or joining the instance
(`executor.startup_seconds`); "process s" is the whole command. The ratio compares run times with the
local executor at the same number of workers. Peak RSS: for local runs the largest process of the run
(driver or a forked worker), for Ray the largest Ray worker (`executor.peak_worker_rss_mb`) and the driver.
Every configuration's output (data/part-*, in order) must hash to the same digest.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
# `python bench/ray.py` puts bench/ first on sys.path, where a script named like a standard module
# would shadow the standard library's (as bench/tokenize.py, since renamed, shadowed tokenize): take
# bench/ off before anything imports it; load bench modules by path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

STEEL = [sys.executable, "-m", "steel_data.cli", "run"]


def bench_module(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measured(cmd: list[str]) -> dict:
    """Run cmd in a child (`--child`), which reports its wall time and its children's peak RSS."""
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(cmd)], cwd=REPO, capture_output=True,
                          text=True, env=dict(os.environ, RAY_AUTH_MODE="disabled"))
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def child(cmd: list[str]) -> None:
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(proc.returncode)
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"wall": wall, "rss_mb": rss}))


def output_digest(out: Path) -> str:
    code = ("import hashlib, sys, pyarrow.parquet as pq, pathlib\n"
            "h = hashlib.sha256()\n"
            "for p in sorted(pathlib.Path(sys.argv[1]).glob('data/part-*')):\n"
            "    for row in pq.read_table(p).to_pylist(): h.update(repr(sorted(row.items())).encode())\n"
            "print(h.hexdigest()[:16])")
    return subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True,
                          check=True).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipe", choices=["text", "code"], default="text")
    ap.add_argument("--scale", type=int, default=1, help="repeat the input this many times")
    ap.add_argument("--shard-size", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=1, help="runs per configuration (the fastest counts)")
    ap.add_argument("--configs", nargs="*", default=["local 1w", "ray 1w", "local 2w", "ray 2w", "ray 2 nodes"])
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "steel" / "parity"))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(json.loads(args.child))
        return

    corpus = bench_module("corpus")
    inputs = corpus.build_inputs(Path(args.cache))
    tmp = Path(tempfile.mkdtemp(prefix="steel-bench-ray-"))
    src = inputs[args.recipe]
    if args.scale > 1:
        data = src.read_bytes()
        src = tmp / f"{args.recipe}-x{args.scale}.jsonl"
        src.write_bytes(data * args.scale)
    docs = sum(1 for _ in open(src, encoding="utf-8"))
    extra = ["--shard-size", str(args.shard_size)]
    if args.recipe == "text":
        from steel_data.lm import build_tiny_models

        texts = corpus.read_texts(inputs["text"])[:2000]
        models = build_tiny_models(texts, tmp / "models", lang="zh", vocab_size=2000)
        recipe = str(REPO / "recipes/steel-text.yaml")
        extra += ["--set", f"perplexity_filter.model_dir={models}"]
    else:
        import yaml

        data = yaml.safe_load((REPO / "recipes/steel-code.yaml").read_text())
        data["process"] = [e for e in data["process"]  # the tokenized alphanumeric filter needs a hub download
                           if not ("alphanumeric_filter" in e and e["alphanumeric_filter"]["tokenization"])]
        recipe = str(tmp / "code.yaml")
        Path(recipe).write_text(yaml.safe_dump(data, allow_unicode=True))
    print(f"== {args.recipe} recipe on {src.name}: {docs:,} docs, {src.stat().st_size / 1e6:.1f} MB, "
          f"shards of {args.shard_size}; {os.cpu_count()} cores")

    nodes = None
    results = []
    try:
        for config in args.configs:
            flags = []
            if config.startswith("local"):
                flags = ["--workers", config.split()[1].rstrip("w")]
            elif config == "ray 2 nodes":
                from steel_data.ray_nodes import RayNodes

                nodes = RayNodes(num_cpus=1, object_store_memory=256 * 2**20)
                nodes.add_node(num_cpus=1)
                wait_two_nodes(nodes.address)
                flags = ["--executor", "ray", "--ray-address", nodes.address]
            else:
                flags = ["--executor", "ray", "--workers", config.split()[1].rstrip("w"),
                         "--ray-object-store-mb", "512"]
            best = None
            for _ in range(args.repeat):
                out = tmp / config.replace(" ", "-")
                shutil.rmtree(out, ignore_errors=True)
                m = measured(STEEL + [recipe, "-i", str(src), "-o", str(out), "--no-progress", *extra, *flags])
                stats = json.loads((out / "stats.json").read_text())
                if best is None or stats["wall_seconds"] < best[1]["wall_seconds"]:
                    best = (m, stats, output_digest(out))
            results.append((config, *best))
            m, stats, digest = best
            ex = stats.get("executor") or {}
            print(f"  {config}: run {stats['wall_seconds']:.1f} s, start-up {ex.get('startup_seconds', 0):.1f} s, "
                  f"process {m['wall']:.1f} s, output {digest}", flush=True)
    finally:
        if nodes is not None:
            nodes.stop()

    local = {c.split()[1]: s["wall_seconds"] for c, _, s, _ in results if c.startswith("local")}
    print("\n| configuration | run s | vs local | start-up s | process s | docs/s (run) | peak RSS MB | "
          "nodes | output |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for config, m, stats, digest in results:
        ex = stats.get("executor") or {}
        workers = config.split()[1] if not config.endswith("nodes") else "2w"
        ratio = stats["wall_seconds"] / local[workers] if workers in local else float("nan")
        rss = (f"{ex['peak_worker_rss_mb']:.0f} (worker) / {m['rss_mb']:.0f} (driver)" if ex
               else f"{m['rss_mb']:.0f}")
        print(f"| {config} | {stats['wall_seconds']:.2f} | {ratio:.2f}x | {ex.get('startup_seconds', 0):.1f} | "
              f"{m['wall']:.1f} | {docs / stats['wall_seconds']:,.0f} | {rss} | {ex.get('nodes', 1)} | {digest} |")
    digests = {d for *_, d in results}
    print(f"\noutputs identical across configurations: {'yes' if len(digests) == 1 else 'NO'}")


def wait_two_nodes(address: str) -> None:
    code = ("import os, sys, time, ray\n"
            "os.environ['RAY_AUTH_MODE'] = 'disabled'\n"
            "ray.init(address=sys.argv[1], log_to_driver=False, logging_level='ERROR')\n"
            "t = time.time()\n"
            "while sum(n['Alive'] for n in ray.nodes()) < 2 and time.time() - t < 120: time.sleep(0.2)\n"
            "print(sum(n['Alive'] for n in ray.nodes()))")
    out = subprocess.run([sys.executable, "-c", code, address], capture_output=True, text=True, timeout=300)
    if out.stdout.strip() != "2":
        raise SystemExit(f"the second Ray node did not join: {out.stderr[-2000:]}")


if __name__ == "__main__":
    main()
