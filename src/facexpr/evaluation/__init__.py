from facexpr.evaluation.evaluate import evaluate, evaluate_dir, predict_proba
from facexpr.evaluation.metrics import (
    accuracy_interval,
    classification_metrics,
    confusion_matrix,
    metrics_from_confusion,
)

__all__ = [
    "accuracy_interval",
    "classification_metrics",
    "confusion_matrix",
    "evaluate",
    "evaluate_dir",
    "metrics_from_confusion",
    "predict_proba",
]
