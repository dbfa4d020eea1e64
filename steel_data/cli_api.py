"""`steel serve`, `steel submit`, `steel status`, `steel cancel` and `steel stats --job`: the HTTP service's verbs.

`serve` starts the API (the `api` package, installed with the `api` extra) under uvicorn; the others talk to a
running server through `steel_data.client` ($STEEL_API_URL, $STEEL_API_TOKEN, or --url/--token).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys

from steel_data.client import TERMINAL, ApiError, SteelClient


def _client(args) -> SteelClient:
    return SteelClient(args.url, args.token)


def _add_conn(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=None, help="API base URL (default: $STEEL_API_URL or http://127.0.0.1:8000)")
    p.add_argument("--token", default=None, help="bearer token (default: $STEEL_API_TOKEN)")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(args) -> int:
    try:
        import uvicorn
    except ImportError:
        print("error: the API needs the `api` extra: pip install 'steel[api]'", file=sys.stderr)
        return 2
    if args.data_root:
        os.environ["STEEL_DATA_ROOTS"] = os.pathsep.join(os.path.abspath(p) for p in args.data_root)
    if not os.environ.get("STEEL_API_TOKEN") and not _is_loopback(args.host) and not args.insecure:
        print(f"error: serving on {args.host} without STEEL_API_TOKEN would let anyone submit jobs; set a token "
              "or pass --insecure", file=sys.stderr)
        return 2
    if args.workers > 1:  # each worker process serves; one of them (elected by a lock) runs the jobs
        os.environ["STEEL_SERVE_DIE_WITH_PARENT"] = "1"
    uvicorn.run("api.app:app_from_env", factory=True, host=args.host, port=args.port, log_level=args.log_level,
                workers=args.workers, timeout_graceful_shutdown=5)
    return 0


def _show_progress(job: dict) -> str:
    p = job.get("progress") or {}
    line = (f"{job['id']}  {job['state']:10s}  {p.get('records_done', 0)}/{p.get('records_total', 0)} records  "
            f"{p.get('shards_done', 0)}/{p.get('shards_total', 0)} shards  {p.get('phase', '')}")
    if job.get("error"):
        line += f"\n  error: {job['error'].splitlines()[0]}"
    return line


def cmd_submit(args) -> int:
    from steel_data.cli import _overrides

    c = _client(args)
    try:
        job = c.submit(args.recipe, args.input, args.output, name=args.name, text_key=args.text_key,
                       text_template=args.text_template, set=_overrides(args.set) or None,
                       skip_ops=args.skip_op or None, shard_size=args.shard_size, format=args.format,
                       workers=args.workers, overwrite=args.overwrite or None)
        print(job["id"])
        if not args.wait:
            return 0
        for _event, state in c.events(job["id"]):
            print(_show_progress(state), file=sys.stderr)
        final = c.job(job["id"])
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0 if final["state"] == "succeeded" else 1


def cmd_status(args) -> int:
    c = _client(args)
    try:
        if args.job:
            job = c.job(args.job)
            if args.json:
                print(json.dumps(job, indent=2, ensure_ascii=False))
                return 0
            print(_show_progress(job))
            for op in (job.get("progress") or {}).get("ops", []):
                change = f"-{op['dropped']}" if op["dropped"] else (f"~{op['modified']}" if op["modified"] else "")
                print(f"  {op['label']:36s} {op['docs_in']:>9} -> {op['docs_out']:<9} {change}")
            return 0
        jobs = c.jobs(state=args.state)
        if args.json:
            print(json.dumps(jobs, indent=2, ensure_ascii=False))
            return 0
        for j in jobs["jobs"]:
            frac = f"{j['fraction']:.0%}" if j.get("fraction") is not None else "-"
            print(f"{j['id']}  {j['state']:10s} {frac:>5s}  {j['output']}  {j.get('name') or ''}")
        return 0
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def cmd_cancel(args) -> int:
    try:
        job = _client(args).cancel(args.job)
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{job['id']} {job['state']}")
    return 0


def stats_of_job(args) -> dict | None:
    """For `steel stats --job ID`: the job's stats.json from the server (None after printing an error)."""
    try:
        return _client(args).stats(args.job)
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def add_commands(sub) -> None:
    serve = sub.add_parser("serve", help="run the HTTP API (jobs, statistics, reports, token stream)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--data-root", action="append", default=[], metavar="DIR",
                       help="folder jobs may read and write (repeatable; default: $STEEL_DATA_ROOTS or the cwd)")
    serve.add_argument("--workers", type=int, default=1,
                       help="server processes (token streaming scales with them; one runs the jobs)")
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--insecure", action="store_true", help="allow a non-loopback host without a token")
    serve.set_defaults(func=cmd_serve)

    sm = sub.add_parser("submit", help="submit a cleaning job to a Steel server")
    sm.add_argument("recipe", help="recipe YAML (read here, sent as data)")
    sm.add_argument("-i", "--input", nargs="+", required=True, help="inputs, as paths on the server's data roots")
    sm.add_argument("-o", "--output", required=True, help="output folder on the server's data roots")
    sm.add_argument("--name", default=None)
    sm.add_argument("--text-key", default=None)
    sm.add_argument("--text-template", default=None)
    sm.add_argument("--set", action="append", default=[], metavar="OP.PARAM=VALUE")
    sm.add_argument("--skip-op", action="append", default=[], metavar="OP")
    sm.add_argument("--shard-size", type=int, default=4096)
    sm.add_argument("--format", choices=["parquet", "jsonl"], default="parquet")
    sm.add_argument("--workers", type=int, default=0)
    sm.add_argument("--overwrite", action="store_true")
    sm.add_argument("--wait", action="store_true", help="follow the job's progress until it ends")
    _add_conn(sm)
    sm.set_defaults(func=cmd_submit)

    st = sub.add_parser("status", help="jobs on a Steel server, or one job's live per-op progress")
    st.add_argument("job", nargs="?", default=None)
    st.add_argument("--state", choices=["queued", "running", "cancelling", *TERMINAL], default=None)
    st.add_argument("--json", action="store_true")
    _add_conn(st)
    st.set_defaults(func=cmd_status)

    cn = sub.add_parser("cancel", help="cancel a job on a Steel server")
    cn.add_argument("job")
    _add_conn(cn)
    cn.set_defaults(func=cmd_cancel)
