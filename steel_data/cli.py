"""`steel`: run recipes locally, list operators, show statistics."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _overrides(items: list[str]) -> dict[str, dict]:
    """`--set op.param=value` (value parsed as YAML) -> {op: {param: value}}."""
    import yaml

    from operators.registry import RecipeError

    out: dict[str, dict] = {}
    for item in items:
        key, sep, value = item.partition("=")
        op, dot, param = key.partition(".")
        if not sep or not dot:
            raise RecipeError(f"--set {item!r}: expected OP.PARAM=VALUE")
        out.setdefault(op, {})[param] = yaml.safe_load(value)
    return out


def cmd_run(args) -> int:
    from operators.registry import RecipeError
    from steel_data.executor import JobMismatch, LocalExecutor, RunConfig, reset_outdir
    from steel_data.progress import ProgressBar
    from steel_data.readers import InputError, TextMapping
    from steel_data.recipe import load_recipe

    try:
        recipe = load_recipe(args.recipe, _overrides(args.set), skip_ops=set(args.skip_op))
        mapping = TextMapping(text_key=recipe.text_key, source_key=args.text_key, template=args.text_template)
    except (RecipeError, InputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    outdir = Path(args.output)
    if args.overwrite:
        reset_outdir(outdir)
    config = RunConfig(recipe=recipe, inputs=args.input, outdir=outdir, mapping=mapping, workers=args.workers,
                       shard_size=args.shard_size, output_format=args.format)
    if args.executor == "ray":
        from steel_data.ray_executor import RayExecutor

        mib = lambda v: int(v * 2**20) if v else None  # noqa: E731
        executor_cls = lambda cfg, progress: RayExecutor(  # noqa: E731
            cfg, progress, address=args.ray_address, object_store_memory=mib(args.ray_object_store_mb),
            worker_memory=mib(args.ray_worker_memory_mb))
    else:
        executor_cls = LocalExecutor
    bar = ProgressBar(recipe, enabled=not args.no_progress)
    try:
        with bar:
            result = executor_cls(config, bar.update).run()
    except (InputError, JobMismatch) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stats = result.stats
    acc = stats["accounting"]
    print(f"{acc['input_records']} records -> {stats['output_docs']} kept, "
          f"{sum(acc['dropped_by_op'].values())} dropped, {acc['quarantined']} quarantined "
          f"in {result.seconds:.1f} s ({acc['input_records'] / max(result.seconds, 1e-9):.0f} docs/s)")
    print(f"cleaned data: {outdir / 'data'}")
    print(f"statistics:   {outdir / 'stats.json'}  (steel stats {outdir})")
    print(f"dropped:      {outdir / 'dropped'}   quarantine: {outdir / 'quarantine'}")
    return 0


def cmd_ops(args) -> int:
    from operators import registry

    infos = [registry.info(n) for n in registry.names()]
    if args.json:
        print(json.dumps([i.__dict__ for i in infos], indent=2, ensure_ascii=False))
        return 0
    for i in infos:
        print(f"{i.name:36s} {i.kind:13s} {i.stat_key or '':18s} {i.summary}")
    return 0


def cmd_stats(args) -> int:
    from steel_data.report import stats_table

    if args.job:  # a job on a Steel server
        from steel_data.cli_api import stats_of_job

        stats = stats_of_job(args)
        if stats is None:
            return 2
    elif args.outdir is None:
        print("error: give an output folder or --job ID", file=sys.stderr)
        return 2
    else:
        path = Path(args.outdir) / "stats.json"
        if not path.exists():
            print(f"error: {path} not found (has the job finished?)", file=sys.stderr)
            return 2
        stats = json.loads(path.read_text())
    if args.json:
        print(json.dumps(stats, indent=2, ensure_ascii=False))
    else:
        print(stats_table(stats))
    return 0


def cmd_tokenize(args) -> int:
    from steel_data.readers import InputError
    from steel_data.tokenize import JobMismatch, TokenizeConfig, TokenizerError, reset_output, tokenize

    out = Path(args.output)
    if args.overwrite:
        reset_output(out)
    config = TokenizeConfig(inputs=args.input, output=out, weights=args.weights, tokenizer=args.tokenizer,
                            seq_len=args.seq_len, text_key=args.text_key, workers=args.workers,
                            shard_bytes=int(args.shard_mb * (1 << 20)), total_tokens=args.total_tokens)
    show = not args.no_progress and sys.stderr.isatty()

    def progress(event: str, data: dict) -> None:
        if show and event == "shard":
            print(f"  {data['name']} ({data['source']}): {data['docs']} docs, {data['tokens']} tokens",
                  file=sys.stderr)

    try:
        result = tokenize(config, progress)
    except (InputError, TokenizerError, JobMismatch) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    m = result.manifest
    mb = sum(s.text_bytes for s in m.sources) / 1e6
    print(f"{m.docs} docs, {mb:.1f} MB of text -> {m.tokens} tokens in {len(m.shards)} shards "
          f"in {result.seconds:.1f} s ({mb / max(result.seconds, 1e-9):.2f} MB/s, "
          f"{m.tokens / max(result.seconds, 1e-9):.0f} tokens/s)")
    for s in m.sources:
        print(f"  {s.name}: {s.tokens} tokens, {s.windows} windows, weight {s.weight:.3f}, "
              f"{s.epoch_windows} per epoch (x{s.ratio:.3f})")
    print(f"{m.epoch_windows} samples of {m.window} tokens per epoch; manifest: {out / 'manifest.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="steel", description="Steel data pipeline")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a recipe over input files")
    run.add_argument("recipe", help="recipe YAML (Data-Juicer format)")
    run.add_argument("-i", "--input", nargs="+", required=True, help="input files, folders or globs")
    run.add_argument("-o", "--output", required=True, help="output folder")
    run.add_argument("--workers", type=int, default=0, help="worker processes (default: all cores)")
    run.add_argument("--executor", choices=["local", "ray"], default="local")
    run.add_argument("--ray-address", default=None,
                     help="a Ray cluster (host:port, or auto); default: start a Ray instance on this machine")
    run.add_argument("--ray-object-store-mb", type=float, default=None,
                     help="object store of the Ray instance started here (default: Ray's, 30%% of memory)")
    run.add_argument("--ray-worker-memory-mb", type=float, default=None,
                     help="memory each Ray worker reserves; a worker grown past it drops its cached state")
    run.add_argument("--text-key", default=None, help="source field holding the text")
    run.add_argument("--text-template", default=None, help="build the text from fields, e.g. '{title}\\n{summary}'")
    run.add_argument("--set", action="append", default=[], metavar="OP.PARAM=VALUE", help="override an op parameter")
    run.add_argument("--skip-op", action="append", default=[], metavar="OP", help="leave an operator out")
    run.add_argument("--shard-size", type=int, default=1024, help="records per shard (unit of work and resume)")
    run.add_argument("--format", choices=["parquet", "jsonl"], default="parquet")
    run.add_argument("--overwrite", action="store_true", help="discard a previous run's outputs in OUTDIR")
    run.add_argument("--no-progress", action="store_true")
    run.set_defaults(func=cmd_run)
    ops = sub.add_parser("ops", help="list operators")
    ops.add_argument("--json", action="store_true")
    ops.set_defaults(func=cmd_ops)
    st = sub.add_parser("stats", help="per-op table of a finished run (a folder, or --job ID on a server)")
    st.add_argument("outdir", nargs="?", default=None)
    st.add_argument("--json", action="store_true")
    st.add_argument("--job", default=None, help="a job on a Steel server ($STEEL_API_URL, $STEEL_API_TOKEN)")
    st.add_argument("--url", default=None, help="with --job: the server's URL")
    st.add_argument("--token", default=None, help="with --job: bearer token")
    st.set_defaults(func=cmd_stats)
    tok = sub.add_parser("tokenize", help="tokenize cleaned data into Megatron-format token shards")
    tok.add_argument("-i", "--input", nargs="+", required=True, metavar="[NAME=]PATH",
                     help="cleaned data, one source each: a `steel run` output folder, a folder, file or glob")
    tok.add_argument("-o", "--output", required=True, help="shard folder")
    tok.add_argument("--weights", nargs="+", type=float, default=None, metavar="W",
                     help="mixture: one weight per input, share of the tokens (e.g. 67 21.8 11.3)")
    tok.add_argument("--total-tokens", type=int, default=None, help="tokens per epoch of the mixture "
                     "(default: all complete windows)")
    tok.add_argument("--tokenizer", default="qwen", help="qwen (default), qwen-hf, a tokenizer.json, "
                     "a tiktoken rank file, a folder, or a Hugging Face hub id")
    tok.add_argument("--seq-len", type=int, default=2048, help="samples are windows of seq_len + 1 tokens")
    tok.add_argument("--text-key", default="text", help="text column")
    tok.add_argument("--workers", type=int, default=0, help="worker processes (default: all cores)")
    tok.add_argument("--shard-mb", type=float, default=64, help="text per shard, MiB (unit of work and resume)")
    tok.add_argument("--overwrite", action="store_true", help="discard previous shards in OUTPUT")
    tok.add_argument("--no-progress", action="store_true")
    tok.set_defaults(func=cmd_tokenize)
    from steel_data.cli_api import add_commands  # serve, submit, status, cancel (the HTTP service)

    add_commands(sub)
    return parser


# Allocator and thread settings for `steel tokenize`, read when numpy and pyarrow load, so set before they are
# imported (`main` imports them after parsing the command line), in a process that has not loaded them (not
# where `main` is called from a program or a test that has); a value already in the environment wins.
# - numpy's OpenBLAS starts a thread per core at import, which spin for about 0.1 s of CPU: tokenize multiplies
#   no matrices, and its worker processes are its parallelism.
# - Arrow's allocator (mimalloc) hands freed memory back to the system 10 ms after it is freed, so each row
#   group's column is faulted in again: 0.35 s of system time per 200 MB of text, on one core. Not handing it
#   back keeps a worker at its largest row group's memory, which it needed anyway.
TOKENIZE_ENV = {"OPENBLAS_NUM_THREADS": "1", "MIMALLOC_PURGE_DELAY": "-1"}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "tokenize" and not {"numpy", "pyarrow"} & sys.modules.keys():
        for key, value in TOKENIZE_ENV.items():
            os.environ.setdefault(key, value)
    from operators.registry import RecipeError
    from steel_data.io import skip_pandas_probe

    skip_pandas_probe()
    try:
        return args.func(args)
    except RecipeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
