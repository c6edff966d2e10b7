"""Dataset preparation: split a domain folder, shrink its train split, synthesise the offline syn→real digits."""

from ...extraction.folders import IMAGE_EXTENSIONS, list_class_folder, list_split
from .shrink import fraction_name, fraction_ratio, shrink_domain
from .split import parse_ratios, split_domain
from .synth_digits import make_synth_digits

__all__ = ["IMAGE_EXTENSIONS", "list_class_folder", "list_split", "split_domain", "parse_ratios", "shrink_domain",
           "fraction_name", "fraction_ratio", "make_synth_digits"]
