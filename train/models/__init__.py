"""Model families, one file each, registered by name (see registry.py)."""

from train.models import anomaly_net, classifier, rocket, sequence  # noqa: F401  (register their constructors)
from train.models.registry import create_model, model_names

__all__ = ["create_model", "model_names"]
