from __future__ import annotations

import os
import shutil
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


@pytest.fixture
def yunet_cache(shared_dir: Path) -> Path:
    """YuNet from ../shared/models copied into the (per-test) download cache, as a first run's download would."""
    from facexpr.detection.model_files import YUNET_FILE, model_cache_dir

    target = model_cache_dir() / YUNET_FILE
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shared_dir / "models" / YUNET_FILE, target)
    return target


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A random-weight tiny model saved as a weights file: the detection tests check plumbing, not accuracy."""
    from facexpr import create_model, save_weights

    folder = tmp_path_factory.mktemp("weights")
    return str(save_weights(create_model("resemotenet_w0125_g48"), folder / "tiny.safetensors"))
