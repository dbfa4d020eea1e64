"""Recipes in Data-Juicer's YAML format, validated completely before any data is read."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from operators import registry
from operators.base import Deduplicator, Filter, Mapper, Op
from operators.registry import RecipeError

# Data-Juicer global options that Steel accepts and ignores (they configure DJ's own executor or cache).
_DJ_GLOBALS_IGNORED = {
    "dataset_path", "export_path", "np", "use_cache", "ds_cache_dir", "open_tracer", "op_fusion", "executor_type",
    "skip_op_error", "export_shard_size", "export_in_parallel", "keep_stats_in_res_ds", "keep_hashes_in_res_ds",
    "cache_compress", "use_checkpoint", "temp_dir", "open_monitor", "trace_num", "op_list_to_trace", "suffixes",
    "add_suffix", "work_dir", "fusion_strategy", "adaptive_batch_size", "turbo", "save_stats_in_one_file",
    "export_type", "dataset", "auto", "auto_num", "hpo_config", "data_probe_algo", "data_probe_ratio",
}
_KNOWN_GLOBALS = {"project_name", "text_keys", "process", "tokenize"} | _DJ_GLOBALS_IGNORED


@dataclass
class Recipe:
    name: str
    text_key: str
    ops: list[Op]
    source: dict[str, Any] = field(default_factory=dict)
    tokenize: Any = None  # steel_data.tokenize.TokenizeStage: tokenize the cleaned output as a last stage

    @property
    def mappers_and_filters(self) -> list[Op]:
        return [op for op in self.ops if not isinstance(op, Deduplicator)]

    @property
    def dedup(self) -> Deduplicator | None:
        dedups = [op for op in self.ops if isinstance(op, Deduplicator)]
        return dedups[0] if dedups else None

    def op_labels(self) -> list[str]:
        """Unique labels per op position (the same op may appear twice, e.g. two alphanumeric filters)."""
        counts: dict[str, int] = {}
        labels = []
        for op in self.ops:
            counts[op.name] = counts.get(op.name, 0) + 1
            labels.append(op.name if counts[op.name] == 1 else f"{op.name}#{counts[op.name]}")
        return labels

    def to_dict(self) -> dict:
        return {
            "project_name": self.name,
            "text_keys": self.text_key,
            "process": [{op.name: op.params.model_dump(exclude_defaults=True, exclude={"text_key"})} for op in self.ops],
        }


def load_recipe(
    path_or_dict: str | Path | dict,
    overrides: dict[str, dict[str, Any]] | None = None,
    skip_ops: set[str] | frozenset[str] = frozenset(),
) -> Recipe:
    """Parse and validate a recipe. `overrides` maps op name -> params to set on every op of that name;
    ops named in `skip_ops` are left out (and not validated)."""
    if isinstance(path_or_dict, dict):
        data, where = path_or_dict, "recipe"
    else:
        where = str(path_or_dict)
        try:
            data = yaml.safe_load(Path(path_or_dict).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RecipeError(f"{where}: no such recipe file") from None
        except yaml.YAMLError as exc:
            raise RecipeError(f"{where}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{where}: a recipe is a mapping with a 'process' list")
    unknown = set(data) - _KNOWN_GLOBALS
    if unknown:
        raise RecipeError(f"{where}: unknown top-level key(s) {sorted(unknown)}")
    for key in sorted(set(data) & _DJ_GLOBALS_IGNORED):
        warnings.warn(f"{where}: Data-Juicer option {key!r} is ignored by Steel", stacklevel=2)
    text_key = data.get("text_keys", "text")
    if isinstance(text_key, list):
        if len(text_key) != 1:
            raise RecipeError(f"{where}: text_keys: Steel processes exactly one text key, got {text_key}")
        text_key = text_key[0]
    if not isinstance(text_key, str) or not text_key:
        raise RecipeError(f"{where}: text_keys must be a field name")
    process = data.get("process")
    if not isinstance(process, list) or not process:
        raise RecipeError(f"{where}: 'process' must be a non-empty list of operators")
    overrides = overrides or {}
    for name in list(overrides) + list(skip_ops):
        registry.get(name)  # an override or skip naming an unknown op is refused too
    ops: list[Op] = []
    for i, entry in enumerate(process):
        if isinstance(entry, str):
            entry = {entry: {}}
        if not isinstance(entry, dict) or len(entry) != 1:
            raise RecipeError(f"{where}: process[{i}] must be a single 'op_name: {{params}}' mapping")
        (name, params), = entry.items()
        if name in skip_ops:
            continue
        if params is not None and not isinstance(params, dict):
            raise RecipeError(f"{where}: process[{i}] {name!r}: parameters must be a mapping")
        params = dict(params or {})
        params.update(overrides.get(name, {}))
        params.setdefault("text_key", text_key)
        try:
            ops.append(registry.build(name, params))
        except RecipeError as exc:
            raise RecipeError(f"{where}: process[{i}]: {exc}") from None
    _check_order(ops, where)
    return Recipe(name=str(data.get("project_name", Path(where).stem)), text_key=text_key, ops=ops, source=data,
                  tokenize=_tokenize_stage(data.get("tokenize"), where))


def _tokenize_stage(spec: Any, where: str):
    """`tokenize:` (Steel's extension): true, or a mapping of TokenizeStage's fields."""
    if spec is None or spec is False:
        return None
    from steel_data.tokenize import TokenizerError, TokenizeStage

    try:
        stage = TokenizeStage.model_validate({} if spec is True else spec)
        stage.check()
    except (ValueError, TokenizerError) as exc:
        raise RecipeError(f"{where}: tokenize: {exc}") from None
    return stage


def _check_order(ops: list[Op], where: str) -> None:
    dedup_positions = [i for i, op in enumerate(ops) if isinstance(op, Deduplicator)]
    if len(dedup_positions) > 1:
        raise RecipeError(f"{where}: at most one deduplicator per recipe")
    if dedup_positions and dedup_positions[0] != len(ops) - 1:
        raise RecipeError(
            f"{where}: {ops[dedup_positions[0]].name!r} must be the last operator (dedup is a global last stage)"
        )
    for op in ops:
        if not isinstance(op, (Mapper, Filter, Deduplicator)):
            raise RecipeError(f"{where}: {op.name!r} is not a mapper, filter or deduplicator")
