"""Expression class names: the canonical order, aliases found in other data sets, and foreign orders."""

from __future__ import annotations

from collections.abc import Sequence

# Canonical order: the alphabetical folder order of the Kaggle FER2013 copy.
FER2013_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
# FER+ adds contempt; its models use this 8-class order.
FERPLUS_CLASSES: tuple[str, ...] = FER2013_CLASSES + ("contempt",)
# The order of the original challenge file fer2013.csv (column `emotion`, 0..6).
FER2013_CSV_ORDER: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# The output order of the official ResEmoteNet checkpoints.
OFFICIAL_RESEMOTENET_ORDER: tuple[str, ...] = ("happy", "surprise", "sad", "angry", "disgust", "fear", "neutral")

_ALIASES = {
    "anger": "angry",
    "angry": "angry",
    "disgust": "disgust",
    "disgusted": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "scared": "fear",
    "happy": "happy",
    "happiness": "happy",
    "joy": "happy",
    "neutral": "neutral",
    "sad": "sad",
    "sadness": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
    "contempt": "contempt",
}


class UnknownClassError(ValueError):
    pass


def canonical_class(name: str) -> str:
    """Map a class name as spelled by some data set (``Anger``, ``happiness``...) to ours."""
    key = name.strip().lower().replace("-", "_")
    if key.isdigit():
        raise UnknownClassError(f"class folder {name!r} is a number; name the class (e.g. 'happy')")
    try:
        return _ALIASES[key]
    except KeyError:
        known = ", ".join(sorted(set(_ALIASES.values())))
        raise UnknownClassError(f"unknown expression class {name!r}; known classes: {known}") from None


def class_order_for(names: Sequence[str]) -> tuple[str, ...]:
    """The model class order for a data set that contains ``names`` (canonical names)."""
    present = set(names)
    unknown = present - set(FERPLUS_CLASSES)
    if unknown:
        raise UnknownClassError(f"unknown classes: {sorted(unknown)}")
    if "contempt" in present:
        return FERPLUS_CLASSES
    return FER2013_CLASSES


def permutation(source: Sequence[str], target: Sequence[str]) -> list[int]:
    """Indices ``p`` such that ``source[p[i]] == target[i]``; raises if the sets differ."""
    if sorted(source) != sorted(target):
        raise ValueError(f"class sets differ: {list(source)} vs {list(target)}")
    return [list(source).index(name) for name in target]
