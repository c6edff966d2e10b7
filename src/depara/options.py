"""The options of a DEPARA graph, and THE defaults used by the Python API and the CLI alike.

One frozen :class:`GraphOptions` describes how a graph is built (docs/method.md §1): the attribution ``method``, the
per-image ``scalar`` of the layer output whose attribution is taken, the colour-channel reduction of the maps, the
node grid they are resampled to, and how edges are made from the features (``center``, ``edge``). Every option is
an :class:`~enum.Enum` of strings (``str`` subclasses, so ``Scalar.l2 == "l2"``); plain strings are accepted and
converted on construction, with a one-line :class:`~depara.errors.DeparaError` naming the option otherwise.

``build_graph(s)`` (:mod:`depara.extraction.extract`), the CLI (``depara extract``, ``depara score``) and the
benchmarks read their defaults from here, so a graph built with the API and one built with the CLI are comparable.
Every graph records its options in ``meta`` (``method``, ``scalar``, ``channel_reduction``, ``node_size``, ``center``,
``edge``; :meth:`GraphOptions.to_meta`), so comparing graphs built differently can be refused.

Defaults (``DEFAULT_*``): node = grad×input of the L2 norm of the layer output, signed channel mean, maps on a
56×56 grid (so models with different input sizes, 224 px ImageNet and 256 px Taskonomy, give comparable nodes),
features centred over the probes, cosine edges; S = V + λE at λ = ∞ (:data:`DEFAULT_LAMBDA`: the edge term
alone, the frozen node weight being 0). numpy-free and torch-free: importable everywhere.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from enum import Enum
from typing import Any, Mapping

from .errors import DeparaError

__all__ = [
    "AttributionMethod", "Scalar", "ChannelReduction", "EdgeMetric", "GraphOptions",
    "DEFAULT_GRAPH_OPTIONS", "LAYER_SELECTION_OPTIONS", "DEFAULT_LAMBDA", "DEFAULT_NODE_SIZE", "DEFAULT_BATCH_SIZE",
    "DEFAULT_FEATURE_MEMORY_MB", "DEFAULT_NODE_WEIGHT", "DEFAULT_LABEL_WEIGHT", "DEFAULT_EDGE_COMPARISON",
    "DEFAULT_EDGE_FEATURES", "DEFAULT_EDGE_SCALE", "DEFAULT_EDGE_KNN_K", "DEFAULT_PROBES", "DEFAULT_RANK_PEER", "DEFAULT_LAYER",
    "MIN_IMAGES_PER_CLASS", "SELECT_MAX_PROBES", "SELECT_N_BOOT", "SELECT_PEER_BOOT",
    "LRP_EPSILON", "IG_STEPS",
    "choices", "check_lam",
    "format_lam",
]


class _StrEnum(str, Enum):
    """A string enum whose ``str()`` is its value (``f"{Scalar.l2}" == "l2"``)."""

    def __str__(self) -> str:
        return str(self.value)

    @classmethod
    def parse(cls, value: Any, what: str):
        """``value`` (a member or its string) as a member; DeparaError naming ``what`` otherwise."""
        if isinstance(value, cls):
            return value
        try:
            return cls(value)
        except ValueError:
            raise DeparaError(f"{what}: expected one of {', '.join(choices(cls))}, got {value!r}") from None


class AttributionMethod(_StrEnum):
    """How the attribution map of a probe is computed (docs/method.md §1)."""

    input_x_gradient = "input_x_gradient"  #: x ⊙ ∂s/∂x (the paper's choice)
    saliency = "saliency"  #: |∂s/∂x|
    integrated_gradients = "integrated_gradients"  #: Captum, zero baseline, IG_STEPS steps
    deeplift = "deeplift"  #: Captum, zero baseline
    lrp = "lrp"  #: Captum LRP, ε-rule with ε = LRP_EPSILON


class Scalar(_StrEnum):
    """The per-image scalar of a layer output whose attribution is the node."""

    sum = "sum"
    mean = "mean"
    l2 = "l2"


class ChannelReduction(_StrEnum):
    """How the colour channels of an attribution map are reduced (``none`` keeps them)."""

    mean = "mean"  #: signed mean
    abs_mean = "abs_mean"  #: mean of absolute values
    none = "none"


class EdgeMetric(_StrEnum):
    """Similarity of two probes' features: ``cosine`` (DEPARA) or Pearson ``correlation`` (the RSA variant)."""

    cosine = "cosine"
    correlation = "correlation"


def choices(enum: type[Enum]) -> tuple[str, ...]:
    """The string values of an options enum, in declaration order."""
    return tuple(str(m.value) for m in enum)


LRP_EPSILON = 1e-4
IG_STEPS = 32
DEFAULT_NODE_SIZE = 56
#: The largest node grid accepted (h·w values per attribution map), so a typo cannot exhaust memory mid-run.
MAX_NODE_PIXELS = 1024 * 1024
DEFAULT_BATCH_SIZE = 32
DEFAULT_FEATURE_MEMORY_MB = 2048.0
#: `depara select`: at most this many images are used; probe half-samples for the intervals and the share won; the
#: half-samples of the label-based peers that do not rank (``peer_boot``, ``--peer-boot``: each a model fit per
#: candidate). The report and the sentence show those peers as ranks only, so by default they get no interval
#: (0: their ``_lo`` / ``_hi`` in ranking.csv / ranking.json are empty); a peer that ranks (alone, or as a part of
#: the ranking rank average: LogME by default) always gets all ``n_boot``.
SELECT_MAX_PROBES = 500
SELECT_N_BOOT = 200
SELECT_PEER_BOOT = 0

# The frozen scorer defaults, frozen in configs/defaults.toml (tests/test_registry_options.py checks that these
# constants equal that file; docs/defaults.md says how each round chose them).
# score = α·V(source, target model) + (1 − w)·E(source, target model) + w·E(source, label graph):
# with α = 0 and w = 1 the default is the label graph's edge term alone (no target model).
DEFAULT_NODE_WEIGHT = 0.0  #: α, the weight of the node term V (0: the node term is not used by default)
DEFAULT_LABEL_WEIGHT = 1.0  #: w, the weight of the label graph's edge term
#: λ of the paper's S = V + λE as the API and the CLI use it by default: 1/α of the frozen node weight. With α = 0
#: λ = ∞, which means S = E, the edge term alone (the limit of S/λ; for every finite λ, S and S/λ rank alike).
#: Pass a finite ``lam`` (the paper used 0.25 on Taskonomy) to add the node term back.
DEFAULT_LAMBDA = math.inf if DEFAULT_NODE_WEIGHT == 0 else 1.0 / DEFAULT_NODE_WEIGHT
# How the source graph is built and compared with the label graph (depara.core.similarity_edges; same file).
# Round 6 (issue 20): chosen on TWO real benches at once — the pretrained bank (six networks pretrained elsewhere,
# 9 real targets) and the 32-px bank (12 CNNs trained here, 16 targets) — by the rule committed before its run
# (benchmarks/results/default_choice_two_benches/RULE.md: a candidate's score is the worse of its two bench
# scores): the kNN comparison with k = 10 neighbours (DEFAULT_EDGE_KNN_K) of pooled, centred features, read at the
# representation, RANK-AVERAGED with the peer DEFAULT_RANK_PEER (LogME; the default scorer of `depara select`
# with labels). Round 5 (the pretrained bank alone) was knn k = ⌊√N⌋ / pooled / standardised + PED, read below the
# representation; round 4 (issue 10) per_probe / flat / centred, on procedural targets (docs/defaults.md).
DEFAULT_EDGE_COMPARISON = "knn"  #: global (Spearman of all edges) | per_probe | knn (DEFAULT_EDGE_KNN_K neighbours)
#: k of the knn comparison: a fixed number of neighbours (at most N − 2 of N probes: fewer probes, fewer
#: neighbours), or 0 for k = ⌊√N⌋ (depara.core.similarity_edges.knn_k)
DEFAULT_EDGE_KNN_K = 10
DEFAULT_EDGE_FEATURES = "pooled"  #: the layer output flattened (flat) or averaged over space (pooled)
DEFAULT_EDGE_SCALE = "centred"  #: dimensions centred over the probes, or centred and standardised
DEFAULT_PROBES = "subset"  #: the label graph's probes: a subset of the labelled images, or all (labelled, ≤ 500)
#: The label-based peer (a registry name) whose rank is averaged with ``depara_labels``'s across the candidates
#: in the default label scorer of ``depara select`` (depara.selection.scorers.DEFAULT_SCORER); "" for none.
DEFAULT_RANK_PEER = "logme"
#: which layer of a source the real-image bank scores: its representation, or the layer (stage) below it
DEFAULT_LAYER = "representation"
#: The fewest images per class the label scorers of ``depara select`` accept (a class of one image has no
#: same-class pair: its label-graph terms and class statistics are undefined).
MIN_IMAGES_PER_CLASS = 2
#: k of the leave-one-out k-NN accuracy baseline (``knn``; depara.estimators.knn_baseline), fixed before any bench run
DEFAULT_KNN_NEIGHBOURS = 5


def _node_size(value: Any) -> tuple[int, int] | None:
    """``None`` / 0 → None (input grid); an int n → (n, n); a pair → (h, w); positive ints only."""
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0):
        return None
    if isinstance(value, bool):
        raise DeparaError(f"node_size: expected None, 0, an int or (h, w), got {value!r}")
    if isinstance(value, (int,)) or (hasattr(value, "__index__") and not hasattr(value, "__len__")):
        value = (int(value), int(value))
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError):
        raise DeparaError(f"node_size: expected None, 0, an int or (h, w), got {value!r}") from None
    if h <= 0 or w <= 0:
        raise DeparaError(f"node_size: expected positive sizes (or 0 for the input grid), got {(h, w)}")
    if h * w > MAX_NODE_PIXELS:  # a map per probe of this size would not fit in memory: refuse before extracting
        raise DeparaError(f"node_size: {h}x{w} = {h * w} values per attribution map exceeds the limit of "
                          f"{MAX_NODE_PIXELS} (e.g. 1024x1024); 56 is the default")
    return (h, w)


def check_lam(lam: Any, what: str = "lam") -> float:
    """λ of S = V + λE as a float ≥ 0 or ``inf`` (S = E, no node term); DeparaError naming ``what`` otherwise."""
    try:
        value = float(lam)
    except (TypeError, ValueError):
        raise DeparaError(f"{what}: expected a number, got {lam!r}") from None
    if math.isnan(value) or value < 0:
        raise DeparaError(f"{what}: expected a number >= 0 (inf: the edge term alone), got {lam!r}")
    return value


def format_lam(lam: float) -> str:
    """λ for tables and titles: ``"∞"`` for the edge term alone, else ``f"{lam:g}"``."""
    return "∞" if math.isinf(lam) else f"{lam:g}"


@dataclass(frozen=True)
class GraphOptions:
    """How a DEPARA graph is built. Frozen and hashable; fields are validated and normalised on construction.

    Attributes:
        method: attribution method (:class:`AttributionMethod`).
        scalar: per-image scalar s of the layer output whose attribution is taken (:class:`Scalar`).
        channel_reduction: colour-channel reduction of the maps (:class:`ChannelReduction`).
        node_size: (h, w) grid every map is resampled to (area averaging when shrinking, bilinear when
            enlarging), or None to keep the input's grid. An int n means (n, n); 0 means None.
        center: centre the features over the probes before the edge similarity.
        edge: edge metric (:class:`EdgeMetric`).

    Build-time knobs that do not change the graph (batch size, device, memory budget, progress bars) are NOT
    options: they are arguments of :func:`depara.extraction.extract.build_graphs`.
    """

    method: AttributionMethod = AttributionMethod.input_x_gradient
    scalar: Scalar = Scalar.l2
    channel_reduction: ChannelReduction = ChannelReduction.mean
    node_size: tuple[int, int] | None = (DEFAULT_NODE_SIZE, DEFAULT_NODE_SIZE)
    center: bool = True
    edge: EdgeMetric = EdgeMetric.cosine

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "method", AttributionMethod.parse(self.method, "method"))
        set_(self, "scalar", Scalar.parse(self.scalar, "scalar"))
        set_(self, "channel_reduction", ChannelReduction.parse(self.channel_reduction, "channel_reduction"))
        set_(self, "edge", EdgeMetric.parse(self.edge, "edge"))
        set_(self, "node_size", _node_size(self.node_size))
        if not isinstance(self.center, bool):
            raise DeparaError(f"center: expected True or False, got {self.center!r}")

    def replace(self, **changes: Any) -> "GraphOptions":
        """A copy with some fields changed (validated like the constructor); unknown names raise DeparaError."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise DeparaError(f"{unknown[0]}: not a graph option; expected one of "
                              f"{', '.join(f.name for f in dataclasses.fields(self))}")
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None = None, **changes: Any) -> "GraphOptions":
        """Defaults updated by ``values`` and ``changes`` (keys = field names)."""
        return cls().replace(**{**dict(values or {}), **changes})

    def to_meta(self) -> dict[str, Any]:
        """JSON-ready record stored in every graph's ``meta`` (``node_size`` None = the input grid)."""
        return {"method": self.method.value, "scalar": self.scalar.value,
                "channel_reduction": self.channel_reduction.value,
                "node_size": None if self.node_size is None else list(self.node_size),
                "center": self.center, "edge": self.edge.value}

    @property
    def node(self) -> str:
        """Short label of the node definition, ``"<scalar>/<channel_reduction>"`` (tables and figures)."""
        return f"{self.scalar.value}/{self.channel_reduction.value}"


#: THE defaults, shared by ``build_graph(s)``, the CLI and the benchmarks.
DEFAULT_GRAPH_OPTIONS = GraphOptions()

#: The preset of layer selection (``depara layers-select``, :func:`depara.benches.layers.select.score_layers`): the original
#: layer-selection code's node (scalar = mean of the layer output, channel reduction = mean of absolute values) and
#: uncentred features; ``node_size`` None there means the smaller of the two models' input sizes.
LAYER_SELECTION_OPTIONS = GraphOptions(scalar=Scalar.mean, channel_reduction=ChannelReduction.abs_mean, center=False,
                                       node_size=None)
