from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"


def pytest_collection_modifyitems(config, items):
    if CORPUS.is_dir():
        return
    skip = pytest.mark.skip(reason=f"needs the shared corpus at {CORPUS} (present in CI, absent in a plain clone)")
    for item in items:
        if "corpus" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def corpus() -> Path:
    return CORPUS


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    """The built-in sample (input + tiny models), generated once per session."""
    from steel_data.sample import main

    out = tmp_path_factory.mktemp("sample")
    main([str(out)])
    return out
