"""Confining client-supplied paths to the data roots.

A request names paths relative to the first data root, or absolute inside one. Refused: `..` components, NUL
bytes, anything whose real path (symlinks followed) leaves every root, the roots themselves as outputs, and the
server's own state folder. Inputs are checked again file by file after globs and folders are expanded, so a
symlink inside a root that points outside it is refused too.
"""

from __future__ import annotations

import os
from pathlib import Path

from steel_data.readers import InputError, expand_inputs

MAX_PATH_CHARS = 4096


class PathRefused(ValueError):
    """A path outside the data roots (or otherwise not allowed); the message says why."""


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


class PathPolicy:
    def __init__(self, roots: list[Path], state_dir: Path | None = None):
        self.roots = [Path(r) for r in roots]
        self.real_roots = [_real(r) for r in self.roots]
        self.state_dir = _real(state_dir) if state_dir is not None else None

    def _candidate(self, raw: str) -> Path:
        if not isinstance(raw, str) or not raw or len(raw) > MAX_PATH_CHARS:
            raise PathRefused("a path is a non-empty string of at most 4096 characters")
        if "\x00" in raw:
            raise PathRefused("NUL byte in path")
        p = Path(raw)
        if ".." in p.parts:
            raise PathRefused(f"{raw!r}: '..' is not allowed")
        return Path(os.path.normpath(p if p.is_absolute() else self.roots[0] / p))

    def check_real(self, path: Path, raw: str) -> Path:
        real = _real(path)
        if not any(_inside(real, root) for root in self.real_roots):
            raise PathRefused(f"{raw!r} is outside the data roots")
        if self.state_dir is not None and _inside(real, self.state_dir):
            raise PathRefused(f"{raw!r} is inside the server's state folder")
        return real

    def resolve(self, raw: str) -> Path:
        """The absolute path a request names, checked to stay inside the roots (it need not exist yet)."""
        cand = self._candidate(raw)
        self.check_real(cand, raw)
        return cand

    def output(self, raw: str) -> Path:
        cand = self.resolve(raw)
        real = _real(cand)
        if any(real == root for root in self.real_roots):
            raise PathRefused(f"{raw!r} is a data root; name a folder inside it")
        if cand.exists() and not cand.is_dir():
            raise PathRefused(f"{raw!r} exists and is not a folder")
        return cand

    def inputs(self, raws: list[str]) -> tuple[list[str], list[Path]]:
        """(the inputs as absolute paths, every file they expand to); each file checked by its real path."""
        resolved = [str(self.resolve(raw)) for raw in raws]
        try:
            sources = expand_inputs(resolved)
        except InputError as exc:
            raise PathRefused(str(exc).replace(str(self.roots[0]) + os.sep, "")) from None
        files = [self.check_real(Path(src.path), self.show(Path(src.path))) for src in sources]
        return resolved, files

    def show(self, path: Path) -> str:
        """A path as a client sees it: relative to the first root when inside it."""
        try:
            return str(Path(path).relative_to(self.roots[0]))
        except ValueError:
            return str(path)


def overlaps(a: Path, b: Path) -> bool:
    ra, rb = _real(a), _real(b)
    return _inside(ra, rb) or _inside(rb, ra)
