from facexpr.data.augment import AugmentConfig, augment_batch, tta_views
from facexpr.data.datasets import ImageSet, load_split

__all__ = ["AugmentConfig", "ImageSet", "augment_batch", "load_split", "tta_views"]
