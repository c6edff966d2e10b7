"""Train domain models and measure layer-wise transferability (the syn2real layer-selection experiment)."""

from .engine import (fresh_transfer_model, load_imagenet_source, load_source, train_domain, transfer_layers,
                     write_transfer_results)
from .models import ARCHS, ModelInfo, build_model, load_checkpoint, transfer_units

__all__ = ["ARCHS", "ModelInfo", "build_model", "load_checkpoint", "transfer_units", "train_domain",
           "transfer_layers", "write_transfer_results", "fresh_transfer_model", "load_imagenet_source", "load_source"]

from .demo import run_layers_demo  # noqa: E402
from .select import layers_select, score_layers  # noqa: E402

__all__ += ["run_layers_demo", "layers_select", "score_layers"]
