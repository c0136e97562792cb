"""Server settings and the limits that protect it from oversized or too many requests."""

from __future__ import annotations

from dataclasses import dataclass, field

from facexpr.preprocessing import MAX_IMAGE_PIXELS

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


@dataclass(frozen=True)
class ServerSettings:
    """``max_upload_bytes`` bounds every request body and WebSocket frame (413 beyond it); ``max_pixels`` bounds
    decoded images (422 beyond it). ``max_queue`` requests may wait for one of the detector workers; more get 503.
    ``cors_origins`` is empty by default: no CORS headers at all unless origins are configured."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_upload_bytes: int = 10 * 1024 * 1024
    max_pixels: int = min(MAX_IMAGE_PIXELS, 40_000_000)
    max_queue: int = 64
    queue_timeout_s: float = 30.0
    max_streams: int = 8
    stream_smoothing: float = 0.5
    cors_origins: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "max_pixels", "max_queue", "max_streams"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.queue_timeout_s <= 0:
            raise ValueError(f"queue_timeout_s must be positive, got {self.queue_timeout_s}")
        if not 0.0 < self.stream_smoothing <= 1.0:
            raise ValueError(f"stream_smoothing must be in (0, 1], got {self.stream_smoothing}")
