"""Find faces in images, folders, videos and cameras, and classify each face's expression."""

from facexpr.detection.detector import Detector, FrameResult, classify
from facexpr.detection.drawing import draw_results

__all__ = ["Detector", "FrameResult", "classify", "draw_results"]
