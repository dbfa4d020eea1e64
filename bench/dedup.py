"""SimHash dedup: fingerprinting throughput, then matching at 10^4..10^6 fingerprints against simhash-pybind's
`find_all` (what Data-Juicer calls), on the same fingerprints; memory; scaling with workers.

    .venv/bin/python bench/dedup.py                          # sizes 1e4 1e5 1e6, every method
    .venv/bin/python bench/dedup.py --sizes 1000000 --methods "serial P=4" "threads2 P=4" "ray2w P=4"
    .venv/bin/pip install simhash-pybind                     # the comparison (benchmark only, not a dependency)

Fingerprints: real SimHash values are either unrelated (64 random-looking bits) or near-copies of one another.
The matching sets are n values around n/4 random centres, each with up to three random bits flipped, so about
a quarter of all values have near neighbours (1.6 M pairs at 10^6), as in a crawl with heavy near-duplication.
Every method runs in a fresh child process on the same values (regenerated from a seed), so its peak RSS is
its own. Methods:

  find_all       simhash-pybind 0.0.3 `find_all(values, 6, 4)` (C++, one core): the pairs Data-Juicer uses
  reference      steel_data.dedup.near_duplicate_pairs (numpy, one process): the local executor's stage
  serial P=k     steel_data.dedup_distributed, every task in this process, k partitions: one core
  threadsN P=k   the same tasks on a pool of N threads (`ThreadEngine`; numpy releases the GIL)
  rayNw P=k      the same tasks as Ray tasks, a local Ray instance with N CPUs (start-up not counted)

"pairs" is the number of distinct near-duplicate pairs; "same" says whether the method's pair set equals
find_all's (or, without simhash-pybind, the reference's). The distributed rows run the whole stage (pairs,
components, survivors), not pairs alone. "CPU s" is the CPU time the method's own code spent (for Ray: its
tasks plus the driver); "machine CPU s" is every process's CPU time on the machine over the run (/proc/stat:
Ray's raylet, object store and worker threads included; meaningful only on an otherwise idle machine).
`--repeat N` runs every method N times, each in a fresh process, one round of all methods after another,
and reports the run with the median wall time.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
# `python bench/dedup.py` puts bench/ first on sys.path, where a script named like a standard module
# would shadow the standard library's (as bench/tokenize.py, since renamed, shadowed tokenize): take
# bench/ off before anything imports it; load bench modules by path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


def bench_module(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fingerprints(n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2**63, max(n // 4, 1), dtype=np.int64).astype(np.uint64) << np.uint64(1)
    v = base[rng.integers(0, len(base), n)]
    for _ in range(3):
        bit = rng.integers(0, 64, n).astype(np.uint64)
        hit = rng.random(n) < 0.5
        v[hit] ^= np.uint64(1) << bit[hit]
    return v


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited across fork + exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def machine_cpu_s() -> float:
    """CPU seconds every process on this machine has used since boot (busy jiffies of /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # less idle and iowait


def pair_codes(lo: np.ndarray, hi: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Pairs of values as sorted int64 codes (index of lo * n + index of hi in the sorted distinct values)."""
    uniq = np.unique(values)
    a, b = np.searchsorted(uniq, lo), np.searchsorted(uniq, hi)
    return np.sort(np.minimum(a, b).astype(np.int64) * len(uniq) + np.maximum(a, b))


def child(method: str, n: int, out: Path) -> dict:
    """Run one method on the n fingerprints; write its pairs to `out`; return the figures."""
    values = fingerprints(n)
    uniq = np.unique(values)
    rss0 = peak_rss_mb()
    extra = {}
    if method == "find_all":
        import simhash

        hashes = [int(x) for x in uniq]
        t, c, m = time.perf_counter(), time.process_time(), machine_cpu_s()
        found = simhash.find_all(hashes, 6, 4)
        seconds, cpu = time.perf_counter() - t, time.process_time() - c
        extra["machine_cpu"] = round(machine_cpu_s() - m, 2)
        arr = np.array(list(found), dtype=np.uint64).reshape(-1, 2)  # a set of (lo, hi) tuples
        lo, hi = arr[:, 0], arr[:, 1]
    elif method == "reference":
        from steel_data.dedup import near_duplicate_pairs

        t, c, m = time.perf_counter(), time.process_time(), machine_cpu_s()
        pairs = near_duplicate_pairs(uniq, 6, 4)
        seconds, cpu = time.perf_counter() - t, time.process_time() - c
        extra["machine_cpu"] = round(machine_cpu_s() - m, 2)
        lo, hi = uniq[pairs[:, 0]], uniq[pairs[:, 1]]
    else:
        from steel_data.dedup_distributed import SerialEngine, ThreadEngine, deduplicate_distributed

        orders = np.arange(n, dtype=np.int64)
        shards = 16
        sources = [(orders[i::shards], values[i::shards]) for i in range(shards)]
        engine_name, parts = method.split(" P=")
        parts = int(parts)
        if engine_name.startswith("ray"):
            import ray

            from steel_data.ray_executor import RayEngine

            workers = int(engine_name[3:-1])
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            t = time.perf_counter()
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level="WARNING",
                     object_store_memory=1 << 30)
            extra["startup_s"] = round(time.perf_counter() - t, 2)
            engine = RayEngine()
            sources = [ray.put(s) for s in sources]  # the shards are in the cluster already, as in a job
            deduplicate_distributed(sources[:1], 6, 4, engine=engine, parts=parts)  # warm the workers
        elif engine_name.startswith("threads"):
            engine = ThreadEngine(int(engine_name[7:]))
        else:
            engine = SerialEngine()
        t, c, m = time.perf_counter(), time.process_time(), machine_cpu_s()
        res = deduplicate_distributed(sources, 6, 4, engine=engine, parts=parts, collect_pairs=True)
        seconds = time.perf_counter() - t
        extra["machine_cpu"] = round(machine_cpu_s() - m, 2)
        # this process's CPU (tasks included) for the serial and thread engines; for Ray, the tasks' CPU
        # (each task's own thread) plus the driver's
        own = time.process_time() - c
        cpu = own if not engine_name.startswith("ray") else res.cpu_seconds + own
        lo, hi = res.pair_values
        extra |= {"rounds": res.rounds, "max_task_rows": res.max_task_rows,
                  "task_rss_mb": round(res.peak_task_rss_mb),
                  "stage_cpu": {k: round(v, 2) for k, v in res.stage_cpu.items()}}
    np.save(out, pair_codes(lo, hi, values))
    return {"method": method, "n": n, "seconds": seconds, "cpu": cpu, "pairs": int(len(lo)),
            "rss_mb": round(peak_rss_mb(), 1), "rss_over_input_mb": round(peak_rss_mb() - rss0, 1), **extra}


# -- does work scale from one process to two on this machine? -------------------------------------------------
def _probe_data() -> dict:
    rng = np.random.default_rng(0)
    big = rng.integers(0, 2**63, 1 << 21, dtype=np.int64).astype(np.uint64)  # 16 MiB
    return {"big": big, "small": [big[i:i + (1 << 17)].copy() for i in range(0, len(big), 1 << 17)],  # 1 MiB each
            "perm": rng.permutation(len(big)), "out": np.empty_like(big)}


def _probe_job(name: str, d: dict) -> None:
    if name == "pure Python loop":
        s = 0
        for i in range(3_000_000):
            s += i * i % 7
    elif name == "np.sort 2M uint64 (16 MiB)":
        for _ in range(3):
            np.sort(d["big"])
    elif name == "np.sort 16 x 128K uint64 (1 MiB each)":
        for _ in range(3):
            for a in d["small"]:
                np.sort(a)
    elif name == "radix_order 16 x 128K keys (22 bits)":
        from steel_data.dedup_distributed import radix_order

        for _ in range(6):
            for a in d["small"]:
                radix_order(a >> np.uint64(42), 22)
    elif name == "random gather from 16 MiB":
        for _ in range(10):
            np.take(d["big"], d["perm"], out=d["out"])
    elif name == "streaming xor/shift over 16 MiB":
        for _ in range(100):
            np.right_shift(d["big"], np.uint64(3), out=d["out"])
            np.bitwise_xor(d["out"], d["big"], out=d["out"])
    elif name == "fresh 64 MiB arrays filled (page faults)":
        for _ in range(15):
            np.empty(1 << 23, np.uint64).fill(1)


PROBE_JOBS = ["pure Python loop", "np.sort 2M uint64 (16 MiB)", "np.sort 16 x 128K uint64 (1 MiB each)",
              "radix_order 16 x 128K keys (22 bits)", "random gather from 16 MiB", "streaming xor/shift over 16 MiB",
              "fresh 64 MiB arrays filled (page faults)"]


def _probe_worker(name: str, start, times) -> None:
    d = _probe_data()
    start.wait()  # both processes begin together
    t = time.perf_counter()
    _probe_job(name, d)
    times.put(time.perf_counter() - t)


def scaling_probe(repeat: int = 3) -> None:
    """Each job alone in one process, then two copies at once in two processes (best of `repeat`): 2 x
    alone / side by side is how much two processes get done over one (2.0: they scale; 1.0: they don't)."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    print("\n== scaling probe: one process, then two side by side (best of %d)" % repeat)
    print("| job | alone s | two at once: each s | throughput, 2 vs 1 |\n|---|---:|---:|---:|")
    for name in PROBE_JOBS:
        results = {}
        for copies in (1, 2):
            best = None
            for _ in range(repeat):
                start, times = ctx.Barrier(copies), ctx.Queue()
                procs = [ctx.Process(target=_probe_worker, args=(name, start, times)) for _ in range(copies)]
                for p in procs:
                    p.start()
                each = sorted(times.get() for _ in procs)
                for p in procs:
                    p.join()
                best = each if best is None or max(each) < max(best) else best
            results[copies] = best
        alone, pair = results[1][0], results[2]
        print(f"| {name} | {alone:.3f} | {pair[0]:.3f} / {pair[1]:.3f} | x{2 * alone / max(pair):.2f} |", flush=True)


def fingerprint_throughput(limit: int) -> None:
    from operators import registry

    corpus = bench_module("corpus")
    inputs = corpus.build_inputs(Path.home() / ".cache" / "steel" / "parity")
    read_texts = corpus.read_texts
    print("\n== fingerprints/s (document_simhash_deduplicator, one process)")
    print("| input | params | docs | MB | seconds | docs/s | MB/s |\n|---|---|---:|---:|---:|---:|---:|")
    for name, params in (("text", {"tokenization": "space", "window_size": 6}),
                         ("text", {"tokenization": "character", "window_size": 6}),
                         ("code", {"tokenization": "space", "window_size": 6, "ignore_pattern": r"\p{P}"})):
        texts = read_texts(inputs[name])[:limit]
        op = registry.build("document_simhash_deduplicator", params)
        op.ensure_ready()
        mb = sum(len(t.encode()) for t in texts) / 1e6
        t = time.perf_counter()
        for text in texts:
            op.fingerprint(text)
        s = time.perf_counter() - t
        label = ", ".join(f"{k}={v}" for k, v in params.items())
        print(f"| {name} | {label} | {len(texts)} | {mb:.1f} | {s:.2f} | {len(texts) / s:,.0f} | {mb / s:.2f} |")


DEFAULT_METHODS = ["find_all", "reference", "serial P=1", "serial P=4", "threads1 P=4", "threads2 P=4",
                   "ray1w P=4", "ray2w P=4"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="*", default=[10**4, 10**5, 10**6])
    ap.add_argument("--methods", nargs="*", default=DEFAULT_METHODS,
                    help="find_all, reference, 'serial P=k', 'threadsN P=k', 'rayNw P=k' (the first one "
                         "run is the truth)")
    ap.add_argument("--no-fingerprints", action="store_true")
    ap.add_argument("--probe", action="store_true", help="only the scaling probe: what two processes get done")
    ap.add_argument("--fingerprint-docs", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs per method and size, interleaved across the methods (the median counts)")
    ap.add_argument("--child", nargs=3, metavar=("METHOD", "N", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        method, n, out = args.child
        print(json.dumps(child(method, int(n), Path(out))))
        return
    if args.probe:
        scaling_probe()
        return
    if not args.no_fingerprints:
        fingerprint_throughput(args.fingerprint_docs)
    methods = list(args.methods)
    try:
        import simhash  # noqa: F401
    except ImportError:
        methods = [m for m in methods if m != "find_all"]
        print("\n(simhash-pybind is not installed: `pip install simhash-pybind` adds the find_all comparison)")
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"steel-bench-dedup-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    print("\n== matching: distinct near-duplicate pairs (6 blocks, distance 4)")
    print("| n | method | wall s | CPU s | machine CPU s | fingerprints/s (wall) | pairs | same | peak RSS MB "
          "| notes |")
    print("|---:|---|---:|---:|---:|---:|---:|---|---:|---|")
    for n in args.sizes:
        # the repeats interleave the methods (one run of each, then again), so that a slow spell of a shared
        # or virtual machine falls on all of them alike
        truth, runs, failed = None, {m: [] for m in methods}, {}
        for _ in range(args.repeat):
            for method in methods:
                if method in failed:
                    continue
                out = tmp / f"{method.replace(' ', '_').replace('=', '')}-{n}.npy"
                proc = subprocess.run([sys.executable, __file__, "--child", method, str(n), str(out)], cwd=REPO,
                                      capture_output=True, text=True)
                if proc.returncode:
                    failed[method] = proc.stderr.strip().splitlines()[-1][:80]
                    continue
                run = json.loads(proc.stdout.strip().splitlines()[-1])
                codes = np.load(out)
                if truth is None:
                    truth = codes
                run["same"] = bool(np.array_equal(codes, truth))
                runs[method].append(run)
        for method in methods:
            if method in failed:
                print(f"| {n:,} | {method} | failed: {failed[method]} |||||||")
                continue
            ordered = sorted(runs[method], key=lambda run: run["seconds"])
            r = ordered[(len(ordered) - 1) // 2]  # the median (the lower one of an even count)
            same = "yes" if all(run["same"] for run in ordered) else "NO"
            notes = ", ".join(f"{k} {v}" for k, v in r.items() if k in ("rounds", "startup_s"))
            if len(ordered) > 1:
                notes += f", wall of {len(ordered)} runs: " + " ".join(f"{run['seconds']:.2f}" for run in runs[method])
            if method.startswith("ray"):
                notes += f", peak task RSS {r['task_rss_mb']} MB"
            if "max_task_rows" in r:
                notes += f", max rows/task {max(r['max_task_rows'].values()):,}"
            if "stage_cpu" in r:
                notes += ", task CPU " + " ".join(f"{k} {v:.2f}" for k, v in r["stage_cpu"].items())
            machine = r.get("machine_cpu", float("nan"))
            print(f"| {n:,} | {method} | {r['seconds']:.2f} | {r['cpu']:.2f} | {machine:.2f} | {n / r['seconds']:,.0f} "
                  f"| {r['pairs']:,} | {same} | {r['rss_mb']:.0f} | {notes.strip(', ')} |", flush=True)


if __name__ == "__main__":
    main()
