"""Name -> operator class. Duplicates are refused; parameters are validated before any data is read."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from operators.base import Filter, Op, OpInfo


class RecipeError(ValueError):
    """A recipe or operator configuration that cannot run; the message names the op and the parameter."""


_REGISTRY: dict[str, type[Op]] = {}

# Data-Juicer base-op options that do not change decisions; accepted so its recipes load unchanged.
IGNORED_DJ_OPTIONS = frozenset(
    {
        "accelerator", "num_proc", "batch_size", "cpu_required", "mem_required", "gpu_required", "turbo",
        "skip_op_error", "work_dir", "audio_key", "image_key", "video_key", "query_key", "response_key",
        "history_key", "index_key", "image_bytes_key", "stats_export_path", "auto_op_parallelism", "runtime_np",
    }
)


def register(cls: type[Op]) -> type[Op]:
    name = cls.name
    if name in _REGISTRY:
        raise ValueError(f"operator {name!r} is already registered (by {_REGISTRY[name].__module__})")
    _REGISTRY[name] = cls
    return cls


def unregister(name: str) -> None:
    """For tests that register temporary operators."""
    _REGISTRY.pop(name, None)


def names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def get(name: str) -> type[Op]:
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise RecipeError(f"unknown operator {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def build(name: str, params: dict[str, Any] | None = None) -> Op:
    """Validate `params` for operator `name` and build it (no heavy state is loaded yet)."""
    cls = get(name)
    params = dict(params or {})
    for key in list(params):
        if key in IGNORED_DJ_OPTIONS:
            params.pop(key)
    try:
        validated = cls.Params(**params)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            msg = "unknown parameter" if err["type"] == "extra_forbidden" else err["msg"]
            msg = msg.removeprefix("Value error, ")
            problems.append(f"parameter {loc!r}: {msg}" if loc else msg)
        raise RecipeError(f"operator {name!r}: " + "; ".join(problems)) from None
    return cls(validated)


def info(name: str) -> OpInfo:
    cls = get(name)
    return OpInfo(
        name=name,
        kind=cls.kind,
        summary=cls.summary or (cls.__doc__ or "").strip().splitlines()[0],
        stat_key=_stat_key_of(cls),
        params_schema=cls.Params.model_json_schema(),
    )


def _stat_key_of(cls: type[Op]) -> str | None:
    key = getattr(cls, "stat_key", None)
    if isinstance(key, str):
        return key
    if key is not None:  # a property: the key depends on parameters (alphanumeric_filter)
        return cls.stat_keys_doc if hasattr(cls, "stat_keys_doc") else None
    return None


_loaded = False


def _load_builtin() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        import operators.dedup.simhash  # noqa: F401
        import operators.filters.perplexity  # noqa: F401
        import operators.filters.text_stats  # noqa: F401
        import operators.mappers.cleaning  # noqa: F401
        import operators.mappers.normalize  # noqa: F401
        import operators.mappers.sentences  # noqa: F401
