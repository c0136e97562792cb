"""Third-party model files fetched on first use: download, SHA-256 check, atomic move into the cache."""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path

from facexpr.files import atomic_write

log = logging.getLogger("facexpr")

YUNET_FILE = "yunet_n_640_640.onnx"
YUNET_SHA256 = "25a606a145a5b6d7271ae138fbd00eba91dad8b83222ae3f2c7ecd0f4a7b0e31"
YUNET_URL = (
    "https://raw.githubusercontent.com/ShiqiYu/libfacedetection.train/"
    "0047ac24afb1a50a0c6105001c89d1b5b805dbf1/onnx/" + YUNET_FILE
)
# Points at a local YuNet ONNX file (offline machines); used as is, without a checksum.
YUNET_ENV = "FACEXPR_YUNET"
_MAX_DOWNLOAD_BYTES = 50_000_000


class ModelFileError(OSError):
    """A model file that cannot be found, downloaded or verified; the message says what to do."""


def model_cache_dir() -> Path:
    """``$FACEXPR_CACHE/models`` or ``~/.cache/facexpr/models``."""
    base = os.environ.get("FACEXPR_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "facexpr"
    )
    return Path(base) / "models"


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, destination: str | os.PathLike, sha256: str, *, timeout: float = 30.0) -> Path:
    """Fetch ``url`` to a temporary file next to ``destination``, verify it, then rename it into place."""
    destination = Path(destination)
    log.info("downloading %s -> %s", url, destination)
    try:
        digest = hashlib.sha256()
        size = 0
        with atomic_write(destination) as out, urllib.request.urlopen(url, timeout=timeout) as response:
            while block := response.read(1 << 16):
                size += len(block)
                if size > _MAX_DOWNLOAD_BYTES:
                    raise ModelFileError(f"{url}: download larger than {_MAX_DOWNLOAD_BYTES:,} bytes; refused")
                digest.update(block)
                out.write(block)
            if digest.hexdigest() != sha256:
                raise ModelFileError(
                    f"{url}: SHA-256 mismatch (got {digest.hexdigest()}, expected {sha256}); file discarded"
                )
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ModelFileError(f"{url}: download failed ({reason})") from None
    return destination


def cached_file(filename: str, url: str, sha256: str, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """The verified cached copy of ``filename``, downloading it when missing or corrupt."""
    path = Path(cache_dir or model_cache_dir()) / filename
    if path.is_file():
        if sha256_file(path) == sha256:
            return path
        log.warning("%s: checksum mismatch in cache; downloading again", path)
    return download(url, path, sha256)


def yunet_model_path(
    path: str | os.PathLike | None = None,
    *,
    url: str = YUNET_URL,
    cache_dir: str | os.PathLike | None = None,
) -> Path:
    """Resolve the YuNet ONNX file: ``path``, else ``$FACEXPR_YUNET``, else the cache (downloaded on first use)."""
    explicit = path or os.environ.get(YUNET_ENV)
    if explicit:
        explicit = Path(explicit)
        if not explicit.is_file():
            raise ModelFileError(f"{explicit}: YuNet model file not found")
        return explicit
    try:
        return cached_file(YUNET_FILE, url, YUNET_SHA256, cache_dir=cache_dir)
    except ModelFileError as exc:
        raise ModelFileError(f"{exc}; offline? set {YUNET_ENV}=/path/to/{YUNET_FILE}") from None
