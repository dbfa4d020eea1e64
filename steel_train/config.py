"""Typed training configuration: dataclasses (a docstring per field), read from TOML, overridden from the CLI.

    [model]     flavor, soft_moe, kernel switches      (steel_train.model.args)
    [parallel]  FSDP2 resharding, precision, AC, compile (steel_train.parallel)
    [optim]     AdamW, schedule, clipping
    [data]      where samples come from and how many per step
    [train]     steps, logging, checkpoints, run folder

Overrides are `section.field=value` strings; values are parsed by the field's type. Unknown sections or fields
are refused, naming them.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

from steel_train.model.args import ATTENTION, FLAVORS, LOSS, RMSNORM, ROPE, SOFT_MOE, ModelArgs, model_args


@dataclass
class ModelConfig:
    flavor: str = "steel-1b"
    """steel-1b (the published 1.12B model) | debug (tiny, trains on a CPU in seconds)"""
    soft_moe: str = "paper"
    """paper (published; a token sees later tokens) | causal"""
    attention: str = "sdpa"
    """flash | sdpa | eager"""
    rmsnorm: str = "torch"
    """triton | torch"""
    rope: str = "torch"
    """triton | torch"""
    loss: str = "torch"
    """fused | triton | torch"""
    vocab_size: int = 0
    """0: the flavor's; else the embedding rows (must cover the dataset's vocabulary)"""
    max_seq_len: int = 0
    """0: the flavor's (RoPE table length)"""

    def args(self) -> ModelArgs:
        return model_args(self.flavor, soft_moe=self.soft_moe, attention=self.attention, rmsnorm=self.rmsnorm,
                          rope=self.rope, loss=self.loss, vocab_size=self.vocab_size or None,
                          max_seq_len=self.max_seq_len or None)


@dataclass
class ParallelConfig:
    reshard_after_forward: bool = True
    """free gathered parameters after each block's forward (ZeRO-3, the paper's "FSDP") or keep them for
    backward (ZeRO-2, the paper's "no share param")"""
    mixed_precision: str = "auto"
    """bf16 | fp32 | auto (bf16 on CUDA, fp32 on CPU); gradients are reduced and kept in fp32"""
    activation_checkpoint: bool = False
    """recompute each block's activations in backward"""
    compile: bool = False
    """torch.compile each block"""

    def __post_init__(self):
        if self.mixed_precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"parallel.mixed_precision = {self.mixed_precision!r}: expected auto, bf16 or fp32")

    def precision(self, device_type: str) -> str:
        if self.mixed_precision == "auto":
            return "bf16" if device_type == "cuda" else "fp32"
        return self.mixed_precision


@dataclass
class OptimConfig:
    lr: float = 3e-4
    """peak learning rate"""
    min_lr: float = 3e-5
    """the cosine ends here"""
    warmup_steps: int = 100
    """linear warmup from 0"""
    decay_steps: int = 0
    """cosine length after warmup; 0: until train.steps"""
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.05
    """on matrices (ndim >= 2: linear, embedding, expert and slot weights); none on biases, norms, the scale"""
    clip: float = 1.0
    """global gradient-norm clipping; 0 disables"""


@dataclass
class DataConfig:
    source: str = ""
    """a token-shard folder (`steel tokenize` output) or http(s)://host/v1/datasets/NAME (`steel serve`)"""
    seed: int = 1234
    """the sample order is a pure function of (dataset, seed, epoch)"""
    global_batch: int = 32
    """samples per optimizer step, over all ranks (gradient accumulation fills it)"""
    micro_batch: int = 4
    """samples per forward/backward on one rank"""
    trace: bool = False
    """write each rank's sample positions and checksums per step to RUN/samples-rankN.jsonl"""


@dataclass
class TrainConfig:
    run_dir: str = "runs/steel"
    """metrics.jsonl, config.toml and checkpoints/ go here; a run resumes from its latest checkpoint"""
    steps: int = 1000
    """optimizer steps in total"""
    log_every: int = 10
    checkpoint_every: int = 500
    """0: only at the end"""
    keep_checkpoints: int = 2
    """older checkpoints are deleted; 0 keeps all"""
    device: str = "auto"
    """auto | cuda | cpu"""
    seed: int = 0
    """model initialisation"""
    stop_after: int = 0
    """stop (with a checkpoint) after this many steps of this invocation; 0: run to `steps` (tests, preemption)"""


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def check(self) -> None:
        """Refuse impossible settings before any work starts."""
        m = self.model
        if m.flavor not in FLAVORS:
            raise ValueError(f"model.flavor = {m.flavor!r}: expected one of {', '.join(FLAVORS)}")
        for name, allowed in (("attention", ATTENTION), ("rmsnorm", RMSNORM), ("rope", ROPE), ("loss", LOSS),
                              ("soft_moe", SOFT_MOE)):
            if getattr(m, name) not in allowed:
                raise ValueError(f"model.{name} = {getattr(m, name)!r}: expected one of {', '.join(allowed)}")
        d = self.data
        if d.micro_batch < 1 or d.global_batch < 1:
            raise ValueError("data.micro_batch and data.global_batch must be >= 1")
        if self.train.steps < 1:
            raise ValueError("train.steps must be >= 1")

    def to_dict(self) -> dict:
        return {s.name: dataclasses.asdict(getattr(self, s.name)) for s in dataclasses.fields(self)}

    def to_toml(self) -> str:
        lines = []
        for section, values in self.to_dict().items():
            lines.append(f"[{section}]")
            for k, v in values.items():
                lines.append(f"{k} = {_toml_value(v)}")
            lines.append("")
        return "\n".join(lines)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _section_types(cfg: Config) -> dict[str, object]:
    return {s.name: getattr(cfg, s.name) for s in dataclasses.fields(cfg)}


def _parse(value, typ, where: str):
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"{where}: expected true or false, got {value!r}")
    try:
        if typ is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if typ is float:
            return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected {typ.__name__}, got {value!r}") from None
    return str(value)


def _apply(cfg: Config, section: str, key: str, value) -> None:
    sections = _section_types(cfg)
    if section not in sections:
        raise ValueError(f"unknown config section [{section}] (sections: {', '.join(sections)})")
    obj = sections[section]
    hints = typing.get_type_hints(type(obj))
    if key not in hints:
        raise ValueError(f"unknown field {section}.{key} (fields: {', '.join(hints)})")
    setattr(obj, key, _parse(value, hints[key], f"{section}.{key}"))


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults, then the TOML file, then `section.field=value` overrides."""
    cfg = Config()
    if path is not None:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
        for section, values in data.items():
            if not isinstance(values, dict):
                raise ValueError(f"{path}: top-level key {section!r} is not a [section]")
            for key, value in values.items():
                _apply(cfg, section, key, value)
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise ValueError(f"override {item!r}: expected section.field=value")
        section, _, name = key.strip().partition(".")
        _apply(cfg, section, name, value.strip())
    # re-run the dataclasses' own checks
    cfg.parallel.__post_init__()
    cfg.check()
    return cfg
