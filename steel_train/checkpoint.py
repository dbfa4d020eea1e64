"""Distributed checkpoints (torch.distributed.checkpoint): model, optimizer and the train state, which holds the
step and the stream state, so a run resumes exactly, also on another world size (DCP reshards on load).

    RUN/checkpoints/step-00000100/     one DCP checkpoint; written as step-...tmp and renamed when complete
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import torch.distributed as dist
import torch.distributed.checkpoint as dcp
import torch.nn as nn
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

_NAME = re.compile(r"^step-(\d{8})$")


def checkpoint_path(root: Path, step: int) -> Path:
    return Path(root) / f"step-{step:08d}"


def list_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under root, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _NAME.match(p.name)
        if m and (p / ".metadata").exists():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(root: Path) -> Path | None:
    found = list_checkpoints(root)
    return found[-1][1] if found else None


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def _rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def save_checkpoint(root: Path, step: int, model: nn.Module, optimizer, train_state: dict, keep: int = 0) -> Path:
    """Collective: every rank calls it. Returns the checkpoint's folder."""
    final = checkpoint_path(root, step)
    tmp = final.with_name(final.name + ".tmp")
    if _rank() == 0:
        Path(root).mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    _barrier()
    model_sd, optim_sd = get_state_dict(model, optimizer)
    dcp.save({"model": model_sd, "optim": optim_sd, "train": train_state}, checkpoint_id=str(tmp))
    _barrier()
    if _rank() == 0:
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        if keep > 0:
            for _, old in list_checkpoints(root)[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
    _barrier()
    return final


def load_checkpoint(path: Path, model: nn.Module, optimizer, train_state: dict) -> dict:
    """Collective. Loads into the (already parallelized) model and optimizer; returns the saved train state
    (`train_state` gives its structure)."""
    model_sd, optim_sd = get_state_dict(model, optimizer)
    state = {"model": model_sd, "optim": optim_sd, "train": train_state}
    dcp.load(state, checkpoint_id=str(path))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    return state["train"]
