"""`steel-train`: train (or resume) Steel-LLM on a token stream.

    steel-train --config run.toml --data SHARDS_OR_URL --run-dir runs/x [--set section.field=value ...]
    torchrun --nproc-per-node 8 -m steel_train.cli --config run.toml ...

A run folder with checkpoints resumes from the latest one (on any number of ranks).
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="steel-train", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="TOML file with [model] [parallel] [optim] [data] [train] sections")
    p.add_argument("--data", help="token-shard folder or steel serve URL (data.source)")
    p.add_argument("--flavor", help="model.flavor: steel-1b | debug")
    p.add_argument("--steps", type=int, help="train.steps")
    p.add_argument("--run-dir", help="train.run_dir")
    p.add_argument("--device", help="train.device: auto | cuda | cpu")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE", help="override a field")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as TOML and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = list(args.set)
    for flag, key in (("data", "data.source"), ("flavor", "model.flavor"), ("steps", "train.steps"),
                      ("run_dir", "train.run_dir"), ("device", "train.device")):
        value = getattr(args, flag)
        if value is not None:
            overrides.insert(0, f"{key}={value}")
    from steel_train.config import load_config

    try:
        cfg = load_config(args.config, overrides)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        print(cfg.to_toml())
        return 0
    from steel_train.train import main_train

    return main_train(cfg)


if __name__ == "__main__":
    sys.exit(main())
