"""`steel tokenize` against the bare tokenizer library on the same text, 1 and 2 cores.

    flock -x /tmp/steel-bench.lock .venv/bin/python bench/tokenize_bench.py [--per-file-mb 8] [--copies 1] \
        [--repeat 3] [--shard-mb 8] [--side-by-side ROUNDS [--only-side-by-side]] [--json FILE]

Input: the shared corpus's cleaned-text files (zh, en, code; not the raw HTML), up to --per-file-mb of text from
each, written as `steel run` writes cleaned data (Parquet parts of 4096 documents) into three sources mixed with
the paper's weights (zh 67, en 21.8, code 11.3).

Bare library: Qwen's vocabulary in tiktoken, one call per document (`encode_ordinary`, and `encode_to_numpy`,
the fastest call), in one process; on 2 cores, the same in 2 forked processes over halves of the documents
(and tiktoken's own threaded `encode_ordinary_batch` for reference); `tokenizers` with the same vocabulary
as tokenizer.json on a sample, for the tiktoken-vs-tokenizers ratio.
Bare program: the smallest whole program doing that encoding (start Python, load the tokenizer, read the same
Parquet files, encode each document; no NFC, no packing, nothing written), one process.
Steel: the whole `steel tokenize` command (process start, reading Parquet, NFC, encoding, packing, writing and
checksumming shards, manifest) with --workers 1 and 2; outputs of both must be byte-identical.

Reports wall-clock MB/s (text bytes, UTF-8) and tokens/s, best of --repeat, and CPU seconds. The machine may be
shared: every round runs every measurement once, the order reversed every other round, and the ratios of Steel to
the bare calls are given per round (median and worst of the rounds) besides the ratio of the best rounds.
CPU seconds per MB are the steadier figure for the 1-core comparison; `steel tokenize --workers 1` must stay at
about one CPU second per wall second (it uses one core).

Side by side (--side-by-side): on a machine shared with others the speed of a core drifts by 20-35 % within
minutes, more than the 1-core gap being measured; so `steel tokenize --workers 1` and a bare call also run at the
same time, each pinned to its own core (Steel's core alternating between rounds), whichever finishes first
keeping its core busy until the other is done: both see the same load, and each round's ratio compares like with
like.

The bare calls get the same documents, in the same order, as Python strings already in memory, and the same
process count (2 processes for 2 cores; Steel's 2 workers have an idle parent). One thing favours them: CPython
caches a string's UTF-8 form the first time tiktoken asks for it, so after the first round (and for the 2nd and
3rd of --copies, which repeat the same string objects) the bare calls skip that encoding, which Steel's fresh
strings pay (measured: 0.04-0.07 s per 70 MB, about 1 %). Left so: the bare figure is not made slower.
"""

from __future__ import annotations

import os
import sys

import argparse
import gzip
import json
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"
SOURCES = {"zh": ["zh/*.jsonl.gz"], "en": ["en/*.jsonl.gz"], "code": ["code/*.jsonl.gz"]}
WEIGHTS = ["67", "21.8", "11.3"]


def load_texts(per_file_bytes: int) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, globs in SOURCES.items():
        docs: list[str] = []
        for pattern in globs:
            for path in sorted(CORPUS.glob(pattern)):
                size = 0
                with gzip.open(path, "rt", encoding="utf-8") as fh:
                    for line in fh:
                        text = json.loads(line)["text"]
                        docs.append(text)
                        size += len(text.encode())
                        if size >= per_file_bytes:
                            break
        out[name] = docs
    return out


def write_cleaned(root: Path, texts: dict[str, list[str]]) -> list[str]:
    inputs = []
    for name, docs in texts.items():
        data = root / name / "data"
        data.mkdir(parents=True)
        for k in range(0, len(docs), 4096):
            part = docs[k:k + 4096]
            pq.write_table(pa.table({"id": [f"{name}#{k + i}" for i in range(len(part))], "text": part}),
                           data / f"part-{k // 4096:05d}.parquet", compression="zstd")
        inputs.append(f"{name}={data}")
    return inputs


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


# -- bare library ---------------------------------------------------------------------------------------
_DOCS: list[str] = []


def _encoding():
    from steel_data.tokenize import get_tokenizer

    return get_tokenizer("qwen")._encoding  # the tiktoken.Encoding itself


def _bare_ordinary(lo_hi) -> int:
    enc = _encoding()
    return sum(len(enc.encode_ordinary(t)) for t in _DOCS[lo_hi[0]:lo_hi[1]])


def _bare_numpy(lo_hi) -> int:
    enc = _encoding()
    empty: frozenset = frozenset()
    return sum(len(enc.encode_to_numpy(t, allowed_special=empty, disallowed_special=()))
               for t in _DOCS[lo_hi[0]:lo_hi[1]])


def bare(fn, cores: int) -> tuple[float, float, int]:
    """(wall, cpu, tokens) of encoding all documents with `cores` processes."""
    n = len(_DOCS)
    c0, cc0, t0 = cpu_self(), cpu_children(), time.perf_counter()
    if cores == 1:
        tokens = fn((0, n))
    else:
        import multiprocessing as mp

        # interleaved halves would split big documents unevenly; contiguous chunks, many per worker
        step = max(1, n // (cores * 16))
        chunks = [(i, min(i + step, n)) for i in range(0, n, step)]
        with ProcessPoolExecutor(cores, mp_context=mp.get_context("fork")) as pool:
            tokens = sum(pool.map(fn, chunks))
    wall = time.perf_counter() - t0
    return wall, (cpu_self() - c0) + (cpu_children() - cc0), tokens


def bare_threads(cores: int) -> tuple[float, float, int]:
    enc = _encoding()
    c0, t0 = cpu_self(), time.perf_counter()
    tokens = sum(map(len, enc.encode_ordinary_batch(_DOCS, num_threads=cores)))
    return time.perf_counter() - t0, cpu_self() - c0, tokens


def bare_hf(sample_bytes: int) -> tuple[float, int]:
    """MB/s of `tokenizers` (Qwen's tokenizer.json) vs tiktoken on the same sample, one core."""
    from steel_data.tokenize import get_tokenizer

    sample, size = [], 0
    for t in _DOCS[::7]:
        sample.append(t)
        size += len(t.encode())
        if size >= sample_bytes:
            break
    hf = get_tokenizer("qwen-hf")._tok
    enc = _encoding()
    t0 = time.perf_counter()
    for t in sample:
        hf.encode(t, add_special_tokens=False)
    t_hf = time.perf_counter() - t0
    t0 = time.perf_counter()
    for t in sample:
        enc.encode_ordinary(t)
    t_tt = time.perf_counter() - t0
    return size / 1e6 / t_hf, size / 1e6 / t_tt


# The smallest whole program doing the same encoding: start, load the tokenizer, read the same Parquet text,
# encode each document (no NFC, no packing, nothing written).
BARE_PROGRAM = r"""
import sys
import pyarrow.parquet as pq
from steel_data.tokenize import get_tokenizer
enc = get_tokenizer("qwen")._encoding
none, n = frozenset(), 0
for path in sys.argv[1:]:
    pf = pq.ParquetFile(path)
    for rg in range(pf.metadata.num_row_groups):
        for text in pf.read_row_group(rg, columns=["text"], use_threads=False).column("text").to_pylist():
            n += len(enc.encode_to_numpy(text, allowed_special=none, disallowed_special=()))
print(n)
"""


def bare_program(files: list[str]) -> tuple[float, float, int]:
    cc0, t0 = cpu_children(), time.perf_counter()
    out = subprocess.run([sys.executable, "-c", BARE_PROGRAM, *files], check=True, capture_output=True, text=True)
    return time.perf_counter() - t0, cpu_children() - cc0, int(out.stdout)


# -- steel tokenize ---------------------------------------------------------------------------------------
def steel_command(inputs: list[str], out: Path, workers: int, shard_mb: float) -> list[str]:
    """The `steel tokenize` command line measured, into a fresh `out`."""
    if out.exists():
        shutil.rmtree(out)
    return [str(REPO / ".venv" / "bin" / "steel"), "tokenize", "-i", *inputs, "-o", str(out), "--weights", *WEIGHTS,
            "--workers", str(workers), "--shard-mb", str(shard_mb), "--no-progress"]


def steel(inputs: list[str], out: Path, workers: int, shard_mb: float) -> tuple[float, float, dict]:
    cmd = steel_command(inputs, out, workers, shard_mb)
    cc0, t0 = cpu_children(), time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    manifest = json.loads((out / "manifest.json").read_text())
    return wall, cpu_children() - cc0, manifest


# -- side by side: Steel and a bare call at the same time, each on its own core ----------------------------------
_BARE = {"encode_ordinary": _bare_ordinary, "encode_to_numpy": _bare_numpy}


def _bare_pinned(name: str, core: int, go, result, stop) -> None:
    os.sched_setaffinity(0, {core})
    fn = _BARE[name]
    go.wait()
    t0 = time.perf_counter()
    fn((0, len(_DOCS)))
    result.put(time.perf_counter() - t0)
    _keep_busy(fn, stop)  # until Steel is done: neither ever runs alone


def _keep_busy(fn, stop) -> None:
    while not stop.is_set():
        fn((0, min(len(_DOCS), 500)))


def _filler(core: int, stop) -> None:
    os.sched_setaffinity(0, {core})
    _keep_busy(_bare_ordinary, stop)


def side_by_side(name: str, inputs: list[str], out: Path, shard_mb: float, steel_core: int) -> tuple[float, float]:
    """(Steel's wall, the bare call's wall): `steel tokenize --workers 1` pinned to one core and the bare call to
    the other, started together; whichever finishes first keeps its core busy until the other is done, so the
    two always share the machine alike (the same other tenants, memory bandwidth and cache)."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    bare_core = 1 - steel_core
    go, stop, result = ctx.Event(), ctx.Event(), ctx.Queue()
    bare_proc = ctx.Process(target=_bare_pinned, args=(name, bare_core, go, result, stop))
    bare_proc.start()
    cmd = steel_command(inputs, out, 1, shard_mb)
    go.set()
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, preexec_fn=lambda: os.sched_setaffinity(0, {steel_core}))
    steel_wall = time.perf_counter() - t0
    filler_stop = ctx.Event()
    filler = ctx.Process(target=_filler, args=(steel_core, filler_stop))
    filler.start()
    bare_wall = result.get(timeout=3600)
    filler_stop.set()
    stop.set()
    filler.join(60)
    bare_proc.join(60)
    return steel_wall, bare_wall


def run_side_by_side(rounds: int, inputs: list[str], tmp: Path, shard_mb: float, mb: float) -> dict:
    """Rounds of `side_by_side` for both bare calls, Steel's core alternating; prints and returns the ratios."""
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("--side-by-side needs 2 cores")
    out: dict[str, dict] = {}
    for rnd in range(rounds):
        for name in (_BARE if rnd % 2 == 0 else list(_BARE)[::-1]):
            steel_wall, bare_wall = side_by_side(name, inputs, tmp / "out-side", shard_mb, steel_core=rnd % 2)
            r = out.setdefault(name, {"steel_walls": [], "bare_walls": [], "ratios": []})
            r["steel_walls"].append(round(steel_wall, 3))
            r["bare_walls"].append(round(bare_wall, 3))
            r["ratios"].append(bare_wall / steel_wall)
            print(f"side by side, round {rnd + 1}, Steel on core {rnd % 2}: steel tokenize --workers 1 "
                  f"{steel_wall:.2f} s ({mb / steel_wall:.2f} MB/s), bare tiktoken {name} {bare_wall:.2f} s "
                  f"({mb / bare_wall:.2f} MB/s): {bare_wall / steel_wall:.1%}", flush=True)
    for name, r in out.items():
        r["median"], r["worst"], r["best"] = statistics.median(r["ratios"]), min(r["ratios"]), max(r["ratios"])
        print(f"1 core, side by side: steel tokenize / bare tiktoken {name}: median {r['median']:.1%}, worst "
              f"{r['worst']:.1%}, best {r['best']:.1%} over {len(r['ratios'])} rounds "
              f"({' '.join(f'{x:.1%}' for x in r['ratios'])})")
    return out


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--per-file-mb", type=float, default=8.0, help="text taken from each corpus file")
    ap.add_argument("--copies", type=int, default=1, help="repeat that text (more volume, same mix)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds (interleaved); best, median and worst reported")
    ap.add_argument("--shard-mb", type=float, default=8.0)
    ap.add_argument("--hf-sample-mb", type=float, default=3.0)
    ap.add_argument("--side-by-side", type=int, default=0, metavar="ROUNDS",
                    help="also run `steel tokenize --workers 1` and each bare call at the same time, each pinned to "
                         "its own core (the cores swapped every round): the 1-core ratio under the same load")
    ap.add_argument("--only-side-by-side", action="store_true", help="skip the rounds above")
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    if not CORPUS.is_dir():
        print(f"needs the shared corpus at {CORPUS}", file=sys.stderr)
        return 2
    texts = {k: v * args.copies for k, v in load_texts(int(args.per_file_mb * 1e6)).items()}
    global _DOCS
    _DOCS = [t for docs in texts.values() for t in docs]
    mb = sum(len(t.encode()) for t in _DOCS) / 1e6
    print(f"text: {mb:.1f} MB in {len(_DOCS)} documents ({', '.join(f'{k} {len(v)}' for k, v in texts.items())}); "
          f"cpus: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    _encoding()  # loaded before forking (steel's workers inherit theirs too)

    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="steel-bench-tok-") as tmp:
        tmp = Path(tmp)
        inputs = write_cleaned(tmp / "in", texts)
        side = run_side_by_side(args.side_by_side, inputs, tmp, args.shard_mb, mb) if args.side_by_side else None
        if args.only_side_by_side:
            if args.json:
                Path(args.json).write_text(json.dumps({"text_mb": mb, "docs": len(_DOCS), "side_by_side": side},
                                                      indent=2))
            return 0

        def steel_run(cores):
            wall, cpu, manifest = steel(inputs, tmp / f"out{cores}", cores, args.shard_mb)
            return wall, cpu, manifest["tokens"], manifest

        tiny = tmp / "tiny" / "data"
        tiny.mkdir(parents=True)
        pq.write_table(pa.table({"id": ["t#0"], "text": ["one short document"]}), tiny / "part-00000.parquet")

        def steel_startup():  # the whole command on one document: start-up and fixed costs only
            wall, cpu, manifest = steel([f"tiny={tiny}", f"tiny2={tiny}", f"tiny3={tiny}"], tmp / "out-tiny", 1, 1)
            return wall, cpu, manifest["tokens"]

        files = [str(f) for name in texts for f in sorted((tmp / "in" / name / "data").glob("*.parquet"))]
        plan = [("steel tokenize, 1 document (fixed costs)", steel_startup)]
        for cores in (1, 2):
            plan.append((f"tiktoken encode_ordinary x{cores}", lambda c=cores: bare(_bare_ordinary, c)))
            plan.append((f"tiktoken encode_to_numpy x{cores}", lambda c=cores: bare(_bare_numpy, c)))
            if cores == 1:
                plan.append(("bare program (start, load, read, encode) x1", lambda: bare_program(files)))
            if cores > 1:
                plan.append((f"tiktoken encode_ordinary_batch threads x{cores}", lambda c=cores: bare_threads(c)))
            plan.append((f"steel tokenize --workers {cores}", lambda c=cores: steel_run(c)))
        # rounds interleave the measurements, so a busy spell on a shared machine hits all of them alike; the
        # order is reversed every other round, so that no measurement always runs first or last
        for rnd in range(args.repeat):
            for label, fn in (plan if rnd % 2 == 0 else plan[::-1]):
                wall, cpu, tokens, *extra = fn()
                r = results.setdefault(label, {"wall": wall, "cpu": cpu, "tokens": tokens, "walls": [], "cpus": []})
                r["walls"].append(round(wall, 3))
                r["cpus"].append(round(cpu, 3))
                r["wall"], r["cpu"] = min(r["wall"], wall), min(r["cpu"], cpu)
                if extra:
                    manifest = extra[0]
                    r["shards"] = len(manifest["shards"])
        identical = files_of(tmp / "out1") == files_of(tmp / "out2")
        text_mb_steel = sum(s["text_bytes"] for s in manifest["sources"]) / 1e6
        hf_mbs, tt_mbs = bare_hf(int(args.hf_sample_mb * 1e6))
    assert abs(text_mb_steel - mb) < 1e-6 * mb + 1e-3, (text_mb_steel, mb)
    fixed = results.pop("steel tokenize, 1 document (fixed costs)")
    print(f"fixed costs of the whole command (one document): {fixed['wall']:.2f} s wall, {fixed['cpu']:.2f} s CPU")
    for label, r in results.items():
        r["mb_s"] = mb / r["wall"]
        r["tok_s"] = r["tokens"] / r["wall"]
        r["cpu_s_per_mb"] = r["cpu"] / mb
        if label.startswith("steel"):
            r["steady_cpu_s_per_mb"] = (r["cpu"] - fixed["cpu"]) / mb
    print(f"{'':46s} {'wall s':>7s} {'MB/s':>7s} {'Mtok/s':>7s} {'CPU s/MB':>9s}  {'median wall':>11s}  walls")
    for label, r in results.items():
        r["median_wall"] = statistics.median(r["walls"])
        print(f"{label:46s} {r['wall']:7.2f} {r['mb_s']:7.2f} {r['tok_s'] / 1e6:7.3f} {r['cpu_s_per_mb']:9.4f}  "
              f"{r['median_wall']:11.2f}  {' '.join(f'{w:.2f}' for w in r['walls'])}")
    summary = {}
    for cores in (1, 2):
        s = results[f"steel tokenize --workers {cores}"]
        for name in ("encode_ordinary", "encode_to_numpy"):
            b = results[f"tiktoken {name} x{cores}"]
            rounds = [bw / sw for bw, sw in zip(b["walls"], s["walls"])]  # Steel's MB/s / the bare call's, per round
            summary[f"{name} x{cores}"] = {"best": s["mb_s"] / b["mb_s"], "rounds": rounds,
                                           "median": statistics.median(rounds), "worst": min(rounds),
                                           "cpu": b["cpu_s_per_mb"] / s["cpu_s_per_mb"]}
            print(f"{cores} core(s): steel tokenize / bare tiktoken {name}: {s['mb_s'] / b['mb_s']:.1%} of its MB/s "
                  f"(best rounds), per round median {statistics.median(rounds):.1%}, worst {min(rounds):.1%} "
                  f"({' '.join(f'{x:.1%}' for x in rounds)}); {b['cpu_s_per_mb'] / s['cpu_s_per_mb']:.1%} per CPU "
                  f"second, {b['cpu_s_per_mb'] / s['steady_cpu_s_per_mb']:.1%} without the fixed costs")
    s = results["steel tokenize --workers 1"]
    print(f"steel tokenize --workers 1: {statistics.median(c / w for c, w in zip(s['cpus'], s['walls'])):.2f} CPU s "
          f"per wall s (median of the rounds; one core is 1.00)")
    s, b = results["steel tokenize --workers 1"], results["bare program (start, load, read, encode) x1"]
    print(f"1 core: steel tokenize / the bare whole program: {s['mb_s'] / b['mb_s']:.1%} of its MB/s (wall clock), "
          f"{b['cpu_s_per_mb'] / s['cpu_s_per_mb']:.1%} per CPU second")
    s1, s2 = results["steel tokenize --workers 1"], results["steel tokenize --workers 2"]
    b1, b2 = results["tiktoken encode_to_numpy x1"], results["tiktoken encode_to_numpy x2"]
    print(f"scaling 1 -> 2 cores: steel x{s2['mb_s'] / s1['mb_s']:.2f}, bare tiktoken x{b2['mb_s'] / b1['mb_s']:.2f}; "
          f"outputs of 1 and 2 workers byte-identical: {identical}")
    print(f"tokenizers (tokenizer.json) vs tiktoken, same vocabulary and sample, 1 core: {hf_mbs:.2f} vs "
          f"{tt_mbs:.2f} MB/s (tiktoken x{tt_mbs / hf_mbs:.1f})")
    if args.json:
        Path(args.json).write_text(json.dumps({"text_mb": mb, "docs": len(_DOCS), "results": results, "fixed": fixed,
                                               "ratios": summary, "identical": identical, "hf_mb_s": hf_mbs,
                                               "tiktoken_mb_s": tt_mbs}, indent=2))
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
