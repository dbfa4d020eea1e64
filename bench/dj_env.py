"""The Data-Juicer 1.6.1 reference environment: a cached virtualenv outside the repository.

Why a separate virtualenv: Data-Juicer pins and pulls a large dependency tree (and torch) that must not
leak into Steel's own environment. Why this install order: pip must meet the local CPU torch wheel
before `py-data-juicer`, otherwise the resolver fetches a multi-GB CUDA build. The venv is built once;
a marker file holding the install plan makes later runs reuse it (a changed plan rebuilds it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

CACHE = Path(os.environ.get("STEEL_CACHE", Path.home() / ".cache" / "steel"))
DJ_VENV = CACHE / "dj-venv"
MARKER = DJ_VENV / ".steel-installed.json"

#: One `pip install` per step, in this order (see the module docstring).
INSTALL_STEPS: list[list[str]] = [
    ["torch==2.13.0"],
    ["py-data-juicer==1.6.1"],
    ["aiohttp"],
    ["opencc==1.1.9", "ftfy==6.3.1", "selectolax==1.0.2", "simhash-pybind", "sentencepiece", "emoji==2.2.0", "regex"],
    # data_juicer.core imports its Ray executor (`@ray.remote` at module level) whenever an op is built;
    # without ray the auto-installer would fetch it. Plain `ray` (not `ray[default]`) is enough.
    ["ray>=2.51.0"],
]


def dj_python() -> Path:
    return DJ_VENV / "bin" / "python"


def dj_bin(name: str) -> Path:
    return DJ_VENV / "bin" / name


def ensure_dj_venv(python: str = "python3.11", log=print) -> Path:
    """Create (or reuse) the Data-Juicer virtualenv and return its python.

    The marker records the install steps done so far; steps appended to INSTALL_STEPS later are installed
    incrementally, any other change to the plan rebuilds the venv from scratch.
    """
    done: list = []
    if MARKER.exists() and dj_python().exists():
        recorded = json.loads(MARKER.read_text())
        if recorded.get("python") == python and recorded["steps"] == INSTALL_STEPS[: len(recorded["steps"])]:
            done = recorded["steps"]
    if len(done) == len(INSTALL_STEPS):
        return dj_python()
    if not done:
        if DJ_VENV.exists():
            log(f"[dj-env] install plan changed or incomplete; rebuilding {DJ_VENV}")
            shutil.rmtree(DJ_VENV)
        CACHE.mkdir(parents=True, exist_ok=True)
        log(f"[dj-env] creating {DJ_VENV} (one-off, several minutes)")
        subprocess.run([python, "-m", "venv", str(DJ_VENV)], check=True)
    for step in INSTALL_STEPS[len(done) :]:
        log(f"[dj-env] pip install {' '.join(step)}")
        subprocess.run([str(dj_python()), "-m", "pip", "install", "--quiet", *step], check=True)
        done = [*done, step]
        MARKER.write_text(json.dumps({"python": python, "steps": done}))
    # Guard: a CUDA torch would mean the resolver went around the local CPU wheel.
    version = subprocess.run(
        [str(dj_python()), "-c", "import torch; print(torch.__version__)"], check=True, capture_output=True, text=True
    ).stdout.strip()
    if "+cpu" not in version:
        raise RuntimeError(f"Data-Juicer venv got torch {version!r}, expected the local CPU build")
    return dj_python()


if __name__ == "__main__":
    print(ensure_dj_venv())
    sys.exit(0)
