"""Token shard sets served under /v1/datasets: DATASETS_DIR/NAME/manifest.json + shard files.

Open sets are cached and reopened when their manifest changes. Only the manifest and the files it lists can be
fetched; names are plain folder names, and every file's real path (symlinks followed) must stay inside the
datasets folder.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from steel_data.shards import MANIFEST, CorruptShard, TokenShards
from steel_data.stream import IndexCache, WindowDigests

from api.paths import PathPolicy, PathRefused

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_NAME = re.compile(NAME_PATTERN)


class DatasetNotFound(LookupError):
    pass


@dataclass
class OpenDataset:
    name: str
    root: Path
    shards: TokenShards
    lock: threading.Lock
    mtime_ns: int
    cache: IndexCache
    digests: WindowDigests

    @property
    def files(self) -> list[str]:
        names = [MANIFEST]
        for s in self.shards.manifest.shards:
            names += [f"{s.name}.bin", f"{s.name}.idx"]
        return names


class DatasetCatalog:
    def __init__(self, root: Path, max_open: int = 32):
        self.root = Path(root)
        self.policy = PathPolicy([self.root])
        self.max_open = max_open
        self._open: dict[str, OpenDataset] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if _NAME.match(p.name) and (p / MANIFEST).is_file())

    def get(self, name: str) -> OpenDataset:
        if not _NAME.match(name):
            raise DatasetNotFound(f"no dataset {name!r}")
        path = self.root / name
        manifest = path / MANIFEST
        try:
            self.policy.check_real(path, name)
            mtime = manifest.stat().st_mtime_ns
        except (PathRefused, OSError):
            raise DatasetNotFound(f"no dataset {name!r}") from None
        with self._lock:
            ds = self._open.get(name)
            if ds is not None and ds.mtime_ns == mtime:
                return ds
            try:
                shards = TokenShards(path)
            except (FileNotFoundError, CorruptShard) as exc:
                raise DatasetNotFound(f"dataset {name!r} cannot be read: {exc}") from None
            ds = OpenDataset(name, path, shards, threading.Lock(), mtime, IndexCache(), WindowDigests())
            if len(self._open) >= self.max_open:
                self._open.pop(next(iter(self._open)))
            self._open[name] = ds
            return ds

    def file(self, name: str, filename: str) -> Path:
        ds = self.get(name)
        if filename not in ds.files:
            raise DatasetNotFound(f"dataset {name!r} has no file {filename!r}")
        path = ds.root / filename
        self.policy.check_real(path, f"{name}/{filename}")
        if not os.path.isfile(path):
            raise DatasetNotFound(f"dataset {name!r}: {filename} is missing")
        return path
