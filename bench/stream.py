"""Token-stream throughput: HTTP clients over loopback against reading the same shards in-process.

    .venv/bin/python bench/stream.py [--tokens 80e6] [--samples 131072] [--chunk 512] [--server-workers 2]
                                     [--threads 2] [--clients 1 8] [--repeat 5] [--dataset DIR]
                                     [--sequential 100] [--request-cost 2000] [--json FILE]

1. A synthetic shard set (random ids, Qwen's vocabulary size, seq_len 2048, 4 shards; written with
   steel_data.shards) unless --dataset names a real one.
2. local: `TokenStream` over the folder in this process (the limit: no HTTP, no copies but the gather).
3. `steel serve` (uvicorn) on 127.0.0.1 serves the folder; 1 client process reads the same samples as rank 0
   of 1, then 8 client processes read them as ranks 0..7 of 8 (together the same global samples).
   Every client checks each response's checksum (per-window xxh3-64); client 1's samples are compared with the
   local read.
4. The server's CPU seconds (user + system, from /proc) per million tokens served; the same for --sequential
   requests of --chunk samples one after another on one connection (server and client CPU per million tokens:
   the steadier figure on a shared machine); and what one request costs apart from its bytes: --request-cost
   sequential 1-sample requests over one connection, server and client CPU per request. (STEEL_FAST_SAMPLES=0 in the environment makes the server answer through its FastAPI route only.)

--repeat rounds, each the local read and then every client count back to back; the table shows each row's
median run, and the two ratios the targets name are also taken within each round (median, min, max over the
rounds): on a shared machine the load drifts between rounds more than within one. Loopback only; every run
reads --samples samples (several epochs of a small set: positions past the epoch wrap into the next one).
"""

from __future__ import annotations

import os as _os
import sys as _sys

# Run as a script, bench/ is sys.path[0], and a script named like a standard module (bench/tokenize.py, since renamed) would shadow the standard library's tokenize.
_HERE = _os.path.dirname(_os.path.abspath(__file__))
_sys.path[:] = [p for p in _sys.path if _os.path.abspath(p or ".") != _HERE]
if getattr(_sys.modules.get("tokenize"), "__file__", "").startswith(_HERE):
    del _sys.modules["tokenize"]

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from steel_data.shards import (  # noqa: E402
    Manifest, ShardEntry, ShardWriter, SourceEntry, TokenizerInfo, shard_name, token_dtype, write_manifest,
)
from steel_data.stream import LocalSource, TokenStream  # noqa: E402

VOCAB = 151936


def make_synthetic(root: Path, tokens: int, seq_len: int, shards: int = 4, seed: int = 0) -> Path:
    """Random documents of 200..4000 tokens ending in the end id, packed into `shards` shards."""
    rng = np.random.default_rng(seed)
    dtype = token_dtype(VOCAB)
    eod = 151643
    window = seq_len + 1
    entries = []
    per = tokens // shards
    for s in range(shards):
        writer = ShardWriter(root / shard_name(s), dtype)
        n, docs = 0, 0
        while n < per:
            lengths = rng.integers(200, 4000, size=256)
            toks = rng.integers(0, eod, size=int(lengths.sum()), dtype=np.int64)
            ends = np.cumsum(lengths) - 1
            toks[ends] = eod
            writer.add(toks.astype(dtype), lengths)
            n += int(lengths.sum())
            docs += len(lengths)
        w = writer.close()
        entries.append(ShardEntry(name=shard_name(s), source="synthetic", docs=w.docs, skipped_docs=0,
                                  tokens=w.tokens, windows=w.tokens // window, text_bytes=0,
                                  bin_bytes=w.bin_bytes, idx_bytes=w.idx_bytes, bin_sha256=w.bin_sha256,
                                  idx_sha256=w.idx_sha256, inputs=[]))
    windows = sum(e.windows for e in entries)
    info = TokenizerInfo(name="synthetic", kind="tiktoken", source="bench/stream.py", sha256="0" * 64,
                         vocab_size=VOCAB, eod_token="<|endoftext|>", eod_id=eod, normalization=None)
    src = SourceEntry(name="synthetic", inputs=[], docs=sum(e.docs for e in entries), skipped_docs=0,
                      tokens=sum(e.tokens for e in entries), windows=windows, text_bytes=0, weight=1.0,
                      epoch_windows=windows, ratio=1.0)
    write_manifest(root, Manifest(
        job={"id": "synthetic", "command": "bench/stream.py"}, tokenizer=info, vocab_size=VOCAB,
        dtype=np.dtype(dtype).name, seq_len=seq_len, window=window, eod_id=eod, docs=src.docs, tokens=src.tokens,
        windows=windows, epoch_windows=windows, mixture={"weights": "natural", "total_windows": windows},
        sources=[src], shards=entries, megatron_data_path=[]))
    return root


def read(source, samples: int, rank: int, world: int, chunk: int, prefetch: int, threads: int,
         digest: bool = False) -> tuple[float, int, str]:
    """(seconds, tokens, sha256 of the samples if asked) for this reader's share of `samples`."""
    stream = TokenStream(source, seed=1, rank=rank, world_size=world, chunk=chunk, prefetch=prefetch,
                         fetch_threads=threads, stop=samples)
    h = hashlib.sha256() if digest else None
    n = 0
    t0 = time.perf_counter()
    for row in stream:
        n += row.size
        if h is not None:
            h.update(row.tobytes())
    return time.perf_counter() - t0, n, h.hexdigest() if h else ""


def _client(url, samples, rank, world, chunk, prefetch, threads, digest, barrier, out):
    from steel_data.stream import HttpSource

    src = HttpSource(url, "bench")
    barrier.wait()
    t0, c0 = time.perf_counter(), os.times()
    secs, n, h = read(src, samples, rank, world, chunk, prefetch, threads, digest)
    c1 = os.times()
    out.put((rank, t0, time.perf_counter(), n, h, src.retried, c1.user + c1.system - c0.user - c0.system))


def median_of(runs: list[dict]) -> dict:
    """The run of median throughput, with every run's rate alongside."""
    ordered = sorted(runs, key=lambda r: r["tokens_per_s"])
    pick = dict(ordered[len(ordered) // 2])
    pick["all_tokens_per_s"] = [r["tokens_per_s"] for r in runs]
    return pick


def clients(url: str, world: int, samples: int, chunk: int, prefetch: int, threads: int,
            digest: bool = False) -> dict:
    ctx = mp.get_context("fork")
    barrier, out = ctx.Barrier(world), ctx.Queue()
    procs = [ctx.Process(target=_client, args=(url, samples, r, world, chunk, prefetch, threads, digest, barrier,
                                               out)) for r in range(world)]
    for p in procs:
        p.start()
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(60)
    start = min(r[1] for r in results)
    end = max(r[2] for r in results)
    tokens = sum(r[3] for r in results)
    return {"seconds": end - start, "tokens": tokens, "tokens_per_s": tokens / (end - start),
            "digest": results[0][4] if world == 1 else "", "retries": sum(r[5] for r in results),
            "client_cpu_s_per_Mtok": sum(r[6] for r in results) / (tokens / 1e6)}


def request_cost(url: str, server_pid: int, n: int) -> dict:
    """CPU milliseconds per request of the server and of this client, for n sequential 1-sample requests."""
    from steel_data.stream import HttpSource

    src = HttpSource(url, "bench")
    for i in range(50):  # warm: connection, index blocks
        src.fetch(1, 0, i, 1)
    s0, c0 = cpu_seconds(server_pid), os.times()
    for i in range(n):
        src.fetch(1, 0, (i * 7919) % src.epoch_length, 1)
    s1, c1 = cpu_seconds(server_pid), os.times()
    src.close()
    return {"requests": n, "server_cpu_ms": (s1 - s0) / n * 1e3,
            "client_cpu_ms": (c1.user + c1.system - c0.user - c0.system) / n * 1e3}


def sequential_cost(url: str, server_pid: int, n: int, chunk: int, epoch_length: int) -> dict:
    """Server and client CPU per million tokens for n sequential `chunk`-sample requests over one connection
    (the client checks every checksum): CPU time is steadier than tokens/s on a shared machine."""
    from steel_data.stream import HttpSource

    src = HttpSource(url, "bench")
    spread = max(1, epoch_length // chunk - 1)
    for i in range(4):  # warm: connection, index blocks, window digests
        src.fetch(1, 0, (i % spread) * chunk, chunk)
    s0, c0, t0 = cpu_seconds(server_pid), os.times(), time.perf_counter()
    tokens = 0
    for i in range(n):
        tokens += src.fetch(1, 0, (i % spread) * chunk, chunk).size
    s1, c1, t1 = cpu_seconds(server_pid), os.times(), time.perf_counter()
    src.close()
    return {"requests": n, "tokens": tokens, "server_cpu_ms_per_Mtok": (s1 - s0) / tokens * 1e9,
            "client_cpu_ms_per_Mtok": (c1.user + c1.system - c0.user - c0.system) / tokens * 1e9,
            "tokens_per_s": tokens / (t1 - t0)}


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of a process and its descendants (the server's worker processes)."""
    total = 0.0
    for p in [pid] + _descendants(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _descendants(pid: int) -> list[int]:
    out = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split() if Path(f"/proc/{pid}").exists() else []:
        out += [int(child)] + _descendants(int(child))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(datasets: Path, state: Path, workers: int) -> tuple[subprocess.Popen, str]:
    """`steel serve` on a free loopback port."""
    import urllib.request

    port = free_port()
    env = {**os.environ, "STEEL_DATA_ROOTS": str(state), "STEEL_DATASETS_DIR": str(datasets),
           "STEEL_STATE_DIR": str(state / "state")}
    proc = subprocess.Popen([sys.executable, "-m", "steel_data.cli", "serve", "--port", str(port),
                             "--workers", str(workers), "--log-level", "warning"], cwd=REPO, env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1).read()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=float, default=80e6, help="synthetic dataset size in tokens")
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--dataset", default=None, help="a real shard folder instead of the synthetic one")
    ap.add_argument("--samples", type=int, default=131072, help="global samples each configuration reads")
    ap.add_argument("--chunk", type=int, default=512, help="samples per request")
    ap.add_argument("--prefetch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2, help="fetch threads per client")
    ap.add_argument("--server-workers", type=int, default=2, help="`steel serve --workers`")
    ap.add_argument("--repeat", type=int, default=5,
                    help="rounds (each: the local read, then every client count); medians are shown")
    ap.add_argument("--request-cost", type=int, default=2000, metavar="N",
                    help="sequential 1-sample requests timed for the per-request CPU (0: skip)")
    ap.add_argument("--sequential", type=int, default=100, metavar="N",
                    help="sequential --chunk-sample requests timed for server and client CPU per M tokens (0: skip)")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8], metavar="N",
                    help="client counts to run (the table's HTTP rows)")
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="steel-bench-stream-"))
    server = None
    try:
        datasets = work / "datasets"
        if args.dataset:
            datasets.mkdir()
            (datasets / "bench").symlink_to(Path(args.dataset).resolve())
        else:
            t0 = time.perf_counter()
            make_synthetic(datasets / "bench", int(args.tokens), args.seq_len)
            print(f"synthetic shard set: {args.tokens / 1e6:.0f}M tokens in {time.perf_counter() - t0:.1f} s")
        ds = datasets / "bench"
        local = LocalSource(ds)
        samples = args.samples
        _, _, local_digest = read(local, samples, 0, 1, args.chunk, args.prefetch, 1, digest=True)  # warms too
        server, url = serve(datasets, work, args.server_workers)
        check = clients(url, 1, samples, args.chunk, args.prefetch, args.threads, digest=True)  # untimed
        assert check["digest"] == local_digest, "HTTP samples differ from the local read"
        # Rounds: the local read, then each client count, back to back; each round's ratios are taken within the
        # round (the machine's load drifts between rounds far more than within one)
        names = ["local (in-process)"] + [f"{w} client{'s' if w > 1 else ''} (HTTP)" for w in args.clients]
        runs: dict[str, list[dict]] = {name: [] for name in names}
        for _ in range(args.repeat):
            secs, n, _ = read(local, samples, 0, 1, args.chunk, args.prefetch, args.threads)
            runs[names[0]].append({"seconds": secs, "tokens": n, "tokens_per_s": n / secs})
            for world, name in zip(args.clients, names[1:]):
                cpu0 = cpu_seconds(server.pid)
                res = clients(url, world, samples, args.chunk, args.prefetch, args.threads)
                res["server_cpu_s_per_Mtok"] = (cpu_seconds(server.pid) - cpu0) / (res["tokens"] / 1e6)
                runs[name].append(res)
        rows = {name: median_of(r) for name, r in runs.items()}
        ratios = {"1 client / local": [a["tokens_per_s"] / b["tokens_per_s"]
                                       for a, b in zip(runs.get("1 client (HTTP)", []), runs[names[0]])],
                  "8 clients / 1 client": [a["tokens_per_s"] / b["tokens_per_s"]
                                           for a, b in zip(runs.get("8 clients (HTTP)", []),
                                                           runs.get("1 client (HTTP)", []))]}
        cost = request_cost(url, server.pid, args.request_cost) if args.request_cost else None
        seq = sequential_cost(url, server.pid, args.sequential, args.chunk, local.epoch_length) \
            if args.sequential else None
        base = rows["local (in-process)"]["tokens_per_s"]
        print(f"\nmedian of {args.repeat} rounds; "
              f"{samples} samples of {local.window} tokens, chunk {args.chunk}, prefetch {args.prefetch}, "
              f"{args.threads} fetch thread(s) per client, {args.server_workers} server process(es), "
              f"{os.cpu_count()} cores")
        print(f"{'reader':24s} {'M tokens/s':>11s} {'MB/s':>8s} {'vs local':>9s} {'server CPU s/Mtok':>18s} "
              f"{'client CPU s/Mtok':>18s}")
        item = local.dtype.itemsize
        for name, r in rows.items():
            cpu, ccpu = r.get("server_cpu_s_per_Mtok"), r.get("client_cpu_s_per_Mtok")
            print(f"{name:24s} {r['tokens_per_s'] / 1e6:11.1f} {r['tokens_per_s'] * item / 1e6:8.0f} "
                  f"{r['tokens_per_s'] / base:9.0%} {'' if cpu is None else f'{cpu:18.4f}'} "
                  f"{'' if ccpu is None else f'{ccpu:18.4f}'}")
        if cost:
            print(f"\none request apart from its bytes ({args.request_cost} sequential 1-sample requests): "
                  f"server {cost['server_cpu_ms']:.3f} ms, client {cost['client_cpu_ms']:.3f} ms of CPU")
        if seq:
            print(f"{args.sequential} sequential {args.chunk}-sample requests on one connection: server "
                  f"{seq['server_cpu_ms_per_Mtok']:.2f}, client {seq['client_cpu_ms_per_Mtok']:.2f} ms of CPU per "
                  f"M tokens ({seq['tokens_per_s'] / 1e6:.0f} M tokens/s)")
        print()
        for (label, values), target in zip(ratios.items(), (0.5, 2.0)):
            if values:
                ordered = sorted(values)
                print(f"{label}, within each round: median {ordered[len(ordered) // 2]:.2f} "
                      f"(min {ordered[0]:.2f}, max {ordered[-1]:.2f}; target >= {target})")
        figures = {"samples": samples, "window": local.window, "chunk": args.chunk, "cores": os.cpu_count(),
                   "server_workers": args.server_workers, "threads": args.threads, "prefetch": args.prefetch,
                   "rows": {k: {kk: vv for kk, vv in v.items() if kk != "digest"} for k, v in rows.items()},
                   "request_cost": cost, "sequential": seq, "ratios_per_round": ratios}
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=2))
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(15)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
