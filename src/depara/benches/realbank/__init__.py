"""The real-image transfer bench (``depara bench realbank``): real targets, a zoo of small sources of three
families, linear-probe and fine-tuning ground truth, every peer and DEPARA variant scored from the labelled target
set, rank quality with bootstrap intervals. See ``docs/realbank.md``."""

from .bench import SCALES, load_defaults, run_realbank

__all__ = ["SCALES", "load_defaults", "run_realbank"]
