"""Parallelism and precision, applied to a single-device model from outside, in a fixed order:
activation checkpointing, then torch.compile, then FSDP2 (`fully_shard` per block, then the root).

    reshard_after_forward=True   parameters are freed after each block's forward and gathered again for
                                 backward (ZeRO-3; the paper's "FSDP")
    reshard_after_forward=False  gathered parameters stay until backward (ZeRO-2; the paper's "no share param")
    mixed_precision=bf16         blocks compute in bf16; gradients are reduced, and the sharded parameters and
                                 optimizer state kept, in fp32
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.nn as nn

from steel_train.config import ParallelConfig


def init_distributed(device_type: str | None = None) -> tuple[int, int, torch.device]:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR...), or make a group of one.

    Returns (rank, world_size, device). NCCL on CUDA, gloo on the CPU."""
    if device_type is None or device_type == "auto":
        device_type = "cuda" if torch.cuda.is_available() else "cpu"
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    backend = "nccl" if device_type == "cuda" else "gloo"
    if not dist.is_initialized():
        if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
            dist.init_process_group(backend, device_id=device if device_type == "cuda" else None)
        else:
            dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
    return dist.get_rank(), dist.get_world_size(), device


def apply_activation_checkpointing(model: nn.Module) -> None:
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

    for i, block in enumerate(model.layers):
        model.layers[i] = checkpoint_wrapper(block, preserve_rng_state=False)


def apply_compile(model: nn.Module, backend: str = "inductor") -> None:
    for block in model.layers:
        block.compile(backend=backend)  # in place: parameter names do not change


def apply_fsdp(model: nn.Module, cfg: ParallelConfig, device: torch.device, mesh=None) -> None:
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    dtype = torch.bfloat16 if cfg.precision(device.type) == "bf16" else torch.float32
    mp = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)
    if mesh is None:
        from torch.distributed.device_mesh import init_device_mesh

        mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    for block in model.layers:
        fully_shard(block, mesh=mesh, reshard_after_forward=cfg.reshard_after_forward, mp_policy=mp)
    # the root (embedding, final norm, output projection) is needed again at once by backward: keep it gathered
    fully_shard(model, mesh=mesh, reshard_after_forward=False, mp_policy=mp)


def parallelize(model: nn.Module, cfg: ParallelConfig, device: torch.device) -> nn.Module:
    """Apply checkpointing, compile and FSDP2 to `model` (in place); returns it."""
    if cfg.activation_checkpoint:
        apply_activation_checkpointing(model)
    if cfg.compile:
        apply_compile(model)
    apply_fsdp(model, cfg, device)
    return model
