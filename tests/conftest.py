from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
SHARED = Path(os.environ.get("FACEXPR_SHARED", ROOT.parent / "shared"))

# Two cores: keep each test process to one intra-op thread so parallel work does not thrash.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    """A few real FER2013 faces per class, in <split>/<class>/<file> layout."""
    return FIXTURES / "faces"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared next to the repository; tests using it skip cleanly when it is absent."""
    if not (SHARED / "datasets").is_dir():
        pytest.skip(f"{SHARED} not present")
    return SHARED


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEXPR_CACHE", str(tmp_path_factory.getbasetemp() / "facexpr-cache"))
