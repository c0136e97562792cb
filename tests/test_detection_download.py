"""YuNet model file: download over real HTTP (local server), SHA-256 check, cache, env override, fallback."""

from __future__ import annotations

import functools
import http.server
import logging
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from facexpr.detection.face_detectors import HaarDetector, YuNetDetector, create_face_detector
from facexpr.detection.model_files import (
    YUNET_ENV,
    YUNET_FILE,
    YUNET_SHA256,
    ModelFileError,
    cached_file,
    sha256_file,
    yunet_model_path,
)


@pytest.fixture
def yunet_source(shared_dir: Path) -> Path:
    path = shared_dir / "models" / YUNET_FILE
    if not path.is_file():
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A real HTTP server on 127.0.0.1 serving ``root``; yields (root, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_download_verifies_and_caches(yunet_source: Path, http_root: tuple[Path, str], tmp_path: Path) -> None:
    root, base = http_root
    shutil.copy(yunet_source, root / YUNET_FILE)
    cache = tmp_path / "cache"
    path = yunet_model_path(url=f"{base}/{YUNET_FILE}", cache_dir=cache)
    assert path == cache / YUNET_FILE
    assert sha256_file(path) == YUNET_SHA256
    assert [p.name for p in cache.iterdir()] == [YUNET_FILE]  # no temporary file left behind
    (root / YUNET_FILE).unlink()  # served no more: the cached copy is used
    assert yunet_model_path(url=f"{base}/{YUNET_FILE}", cache_dir=cache) == path
    assert YuNetDetector(path).model_path == path


def test_corrupt_download_is_rejected(yunet_source: Path, http_root: tuple[Path, str], tmp_path: Path) -> None:
    root, base = http_root
    data = bytearray(yunet_source.read_bytes())
    data[1000] ^= 0xFF
    (root / YUNET_FILE).write_bytes(bytes(data))
    cache = tmp_path / "cache"
    with pytest.raises(ModelFileError, match="SHA-256 mismatch"):
        cached_file(YUNET_FILE, f"{base}/{YUNET_FILE}", YUNET_SHA256, cache_dir=cache)
    assert not any(cache.iterdir())


def test_corrupt_cache_is_replaced(yunet_source: Path, http_root: tuple[Path, str], tmp_path: Path) -> None:
    root, base = http_root
    shutil.copy(yunet_source, root / YUNET_FILE)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / YUNET_FILE).write_bytes(b"truncated")
    path = cached_file(YUNET_FILE, f"{base}/{YUNET_FILE}", YUNET_SHA256, cache_dir=cache)
    assert sha256_file(path) == YUNET_SHA256


def test_missing_file_on_server_names_the_fix(http_root: tuple[Path, str], tmp_path: Path) -> None:
    _, base = http_root
    with pytest.raises(ModelFileError, match=f"download failed.*{YUNET_ENV}"):
        yunet_model_path(url=f"{base}/{YUNET_FILE}", cache_dir=tmp_path / "cache")


def test_env_variable_points_at_a_local_file(
    yunet_source: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    local = tmp_path / "mine.onnx"
    shutil.copy(yunet_source, local)
    monkeypatch.setenv(YUNET_ENV, str(local))
    assert yunet_model_path() == local
    assert create_face_detector("yunet").model_path == local
    monkeypatch.setenv(YUNET_ENV, str(tmp_path / "absent.onnx"))
    with pytest.raises(ModelFileError, match="absent.onnx"):
        yunet_model_path()


def test_auto_falls_back_to_haar_with_one_log_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(YUNET_ENV, str(tmp_path / "absent.onnx"))
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("facexpr")
    logger.addHandler(handler)
    monkeypatch.setattr(logger, "level", logging.DEBUG)
    try:
        detector = create_face_detector("auto")
    finally:
        logger.removeHandler(handler)
    assert isinstance(detector, HaarDetector)
    messages = [r.getMessage() for r in records]
    assert len(messages) == 1 and "YuNet unavailable" in messages[0] and "Haar" in messages[0]
    with pytest.raises(ModelFileError):
        create_face_detector("yunet")


def test_not_a_model_file_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"not onnx")
    with pytest.raises(ModelFileError, match="bogus.onnx: OpenCV cannot load"):
        YuNetDetector(bogus)
