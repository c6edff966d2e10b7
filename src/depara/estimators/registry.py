"""The registry of transferability estimators: DEPARA and its peers, each declaring what it needs.

Modelled on timm's ``models/_registry.py``: estimators are registered once by name
(:func:`register_estimator`), listed with filters on what they need (:func:`list_estimators`) and fetched by name
or alias (:func:`get_estimator`). The harness (:func:`depara.estimators.scoring.score_sources`), ``depara score`` and every
benchmark iterate this registry instead of keeping their own list of names.

An :class:`Estimator` wraps a plain numpy function ``fn`` (for the peers, the functions of
:mod:`depara.estimators.baselines`: ``fn(features, labels, ...) -> float``; for DEPARA, ``fn(graph, target_graph, lam)``),
**higher = more transferable** for every one, and declares its inputs:

========================  ====================================================================================
``needs_features``        the source's N×D features on the target samples
``needs_labels``          the target labels (class indices, or regression targets where supported)
``needs_source_probs``    the source head's N×Cs probabilities on the target samples (LEEP, NCE)
``needs_target_model``    a model trained on the target task (DEPARA: its graph on the probes)
``uses_target_features``  the target model's features when given (RSA, CKA), else the labels as reference
``needs_graph``           the source's DEPARA graph on the probe set
``supports_regression``   defined for real-valued targets
========================  ====================================================================================

:meth:`Estimator.score` adapts the common inputs (:class:`SourceInputs` of one source, :class:`TargetInputs` of
the target) to ``fn``'s arguments. numpy/scipy only: nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from . import baselines, knn_baseline
from ..errors import DeparaError
from ..options import DEFAULT_LAMBDA

if TYPE_CHECKING:  # pragma: no cover
    from ..core.graph import Graph

__all__ = ["Estimator", "SourceInputs", "TargetInputs", "register_estimator", "list_estimators", "get_estimator",
           "estimator_names", "parse_estimators", "reference_representation"]


# ------------------------------------------------------------------------------------------------ inputs
@dataclass
class SourceInputs:
    """What one candidate source contributes, computed once.

    Attributes:
        features: N×D features of the source model on the N target samples (e.g. penultimate layer).
        probs: N×Cs probabilities of the source model's own head on the same samples (LEEP, NCE), or None.
        graph: the source's DEPARA :class:`~depara.core.graph.Graph` on the probe set (``depara``), or None.
    """

    features: np.ndarray | None = None
    probs: np.ndarray | None = None
    graph: "Graph | None" = None


@dataclass
class TargetInputs:
    """What the target task contributes, shared by every source.

    Attributes:
        labels: N class indices 0..C−1, or with ``regression`` N or N×T real targets.
        regression: the labels are real-valued targets.
        features: N×Dt features of a model trained on the target (reference of RSA/CKA), or None.
        graph: the target model's DEPARA graph on the probes (``depara``), or None.
        lam: λ of S = V + λE.
        transrate_eps: the distortion ε of TransRate.
    """

    labels: Any = None
    regression: bool = False
    features: np.ndarray | None = None
    graph: "Graph | None" = None
    lam: float = DEFAULT_LAMBDA
    transrate_eps: float = 1e-4
    _reference: tuple[np.ndarray, str] | None = field(default=None, repr=False)

    def reference(self) -> tuple[np.ndarray, str]:
        """(reference representation, its name) of RSA/CKA, computed once; see :func:`reference_representation`."""
        if self._reference is None:
            self._reference = reference_representation(self.labels, self.regression, self.features)
        return self._reference


def reference_representation(labels, regression: bool, target_features=None) -> tuple[np.ndarray, str]:
    """The representation RSA/CKA compare a source with: the target model's features when given, otherwise the
    targets (regression) or the one-hot labels (classification), i.e. the representation an ideal model of the
    target task would have. Returns (N×D array, a name for the record)."""
    if target_features is not None:
        return np.asarray(target_features), "target features"
    if regression:
        y = np.asarray(labels, dtype=np.float64)
        return (y[:, None] if y.ndim == 1 else y), "regression targets"
    y = np.asarray(labels)
    if y.ndim != 1 or y.size == 0 or not np.issubdtype(y.dtype, np.number) or not np.all(np.isfinite(y)) \
            or np.any(y != np.round(y)) or np.any(y < 0):
        raise DeparaError("labels: expected a vector of integer class indices 0..C-1")
    idx = y.astype(np.int64)
    one_hot = np.zeros((idx.shape[0], int(idx.max()) + 1))
    one_hot[np.arange(idx.shape[0]), idx] = 1.0
    return one_hot, "one-hot labels"


# ---------------------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class Estimator:
    """One registered transferability estimator (higher score = more transferable).

    Attributes:
        name: the registry name (lower case, as in ``depara score --method``).
        fn: the plain numpy function computing the score (see the module docstring for its arguments).
        needs_*, uses_target_features, supports_regression: what it needs (module docstring table).
        description: what the value measures (one line).
        reference: the paper.
        label: display name in tables and figures.
        aliases: other accepted names.
        default: included when no method is named (variants such as DEPARA-V are opt-in).
        adapter: ``adapter(source: SourceInputs, target: TargetInputs) -> float`` calling ``fn``.
    """

    name: str
    fn: Callable[..., float]
    needs_labels: bool
    needs_source_probs: bool = False
    needs_target_model: bool = False
    needs_graph: bool = False
    supports_regression: bool = False
    description: str = ""
    reference: str = ""
    needs_features: bool = False
    uses_target_features: bool = False
    label: str = ""
    aliases: tuple[str, ...] = ()
    default: bool = True
    adapter: Callable[[SourceInputs, TargetInputs], float] | None = field(default=None, repr=False, compare=False)

    def check(self, sources: dict[str, SourceInputs], target: TargetInputs) -> None:
        """Raise a one-line DeparaError naming this estimator (and the source) when an input it needs is missing."""
        if target.regression and not self.supports_regression:
            raise DeparaError(f"method {self.name}: needs class labels, not regression targets")
        for name, s in sources.items():
            if self.needs_source_probs and s.probs is None:
                raise DeparaError(f"method {self.name}: source {name} has no source-head probabilities (probs)")
            if self.needs_features and s.features is None:
                raise DeparaError(f"method {self.name}: source {name} has no features")
            if self.needs_graph and s.graph is None:
                raise DeparaError(f"method {self.name}: source {name} has no DEPARA graph")
        if self.needs_target_model and self.needs_graph and target.graph is None:
            raise DeparaError(f"method {self.name}: needs the target model's graph (give a target model)")

    def available(self, sources: dict[str, SourceInputs], target: TargetInputs) -> bool:
        """Whether :meth:`check` passes."""
        try:
            self.check(sources, target)
        except DeparaError:
            return False
        return True

    def score(self, source: SourceInputs, target: TargetInputs) -> float:
        """This estimator's score of one source for the target."""
        if self.adapter is None:
            raise DeparaError(f"method {self.name}: registered without an adapter; call its fn directly")
        return float(self.adapter(source, target))


_REGISTRY: dict[str, Estimator] = {}
_ALIASES: dict[str, str] = {}


def register_estimator(estimator: Estimator, *, overwrite: bool = False) -> Estimator:
    """Add ``estimator`` to the registry (after the ones already there); returns it.

    Raises DeparaError when the name or an alias is taken (unless ``overwrite``).
    """
    name = estimator.name.lower()
    if not overwrite and (name in _REGISTRY or name in _ALIASES):
        raise DeparaError(f"estimator {name!r}: already registered")
    _REGISTRY[name] = estimator
    for alias in estimator.aliases:
        _ALIASES[alias.lower()] = name
    return estimator


def list_estimators(**needs: bool) -> list[Estimator]:
    """Registered estimators in registration order whose attributes equal every ``needs`` value, e.g.
    ``list_estimators(needs_labels=False)`` (label-free) or ``list_estimators(supports_regression=True)``."""
    fields = set(Estimator.__dataclass_fields__)
    unknown = sorted(set(needs) - fields)
    if unknown:
        raise DeparaError(f"{unknown[0]}: not an estimator attribute (expected e.g. needs_labels, needs_graph, "
                          "supports_regression, default)")
    return [e for e in _REGISTRY.values() if all(getattr(e, k) == v for k, v in needs.items())]


def estimator_names(**needs: bool) -> tuple[str, ...]:
    """Names of :func:`list_estimators` (same filters)."""
    return tuple(e.name for e in list_estimators(**needs))


def get_estimator(name: str) -> Estimator:
    """The estimator registered as ``name`` (or an alias; case-insensitive)."""
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        raise DeparaError(f"method: unknown estimator {name!r}; expected one of {', '.join(_REGISTRY)}")
    return _REGISTRY[key]


def parse_estimators(methods: "str | Any | None", what: str = "methods") -> list[str]:
    """Normalise ``"logme,leep"`` / ``["logme", "leep,nce"]`` / ``"all"`` / None to registry names, in order.

    None and ``"all"`` mean every estimator with ``default=True``. Unknown names raise DeparaError naming ``what``.
    """
    defaults = [e.name for e in list_estimators(default=True)]
    if methods is None:
        return defaults
    items = [methods] if isinstance(methods, str) else list(methods)
    out: list[str] = []
    for item in items:
        for part in str(item).split(","):
            name = part.strip().lower()
            if not name:
                continue
            if name == "all":
                out.extend(m for m in defaults if m not in out)
                continue
            key = _ALIASES.get(name, name)
            if key not in _REGISTRY:
                raise DeparaError(f"{what}: unknown method {part.strip()!r}; expected one of {', '.join(_REGISTRY)}")
            if key not in out:
                out.append(key)
    if not out:
        raise DeparaError(f"{what}: no method given")
    return out


# ------------------------------------------------------------------------------------------ registrations
def _depara_parts(graph, target_graph, lam: float) -> float:
    from ..core.similarity import similarity

    return float(similarity(graph, target_graph, lam=lam))


def _depara_v(graph, target_graph) -> float:
    from ..core.similarity import node_similarity

    return float(node_similarity(graph, target_graph))


def _depara_e(graph, target_graph) -> float:
    from ..core.similarity import edge_similarity

    return float(edge_similarity(graph, target_graph))


#: What each peer's value measures (one line; every one is higher = better).
_DESCRIPTIONS = {
    "logme": "log marginal evidence of a Bayesian linear model on the features (per sample, averaged over classes)",
    "leep": "mean log expected empirical prediction of the source head's probabilities",
    "nce": "negative conditional entropy H(Y | Z) of target labels given source argmax labels",
    "hscore": "tr(cov(f)^+ cov(E[f|y])): class separability of the features",
    "transrate": "coding rate R(Z) minus the mean class-conditional coding rate (nats)",
    "rsa": "Spearman between correlation-distance RDMs of two representations",
    "cka": "linear centred kernel alignment of two representations",
    "sfda": "self-challenging Fisher discriminant analysis: mean probability of the true class after ConfMix",
    "nleep": "LEEP on the posteriors of a Gaussian mixture fitted to the (PCA-reduced) features",
    "parc": "100 x Spearman between the feature RDM and the label RDM (pairwise annotation correlation)",
    "gbc": "minus the summed Bhattacharyya coefficients between per-class Gaussians (class overlap)",
    "pactran": "minus the PAC-Bayes Gaussian bound of a linear softmax head on the features (PACTran-Gaussian)",
    "etran": "energy of the lowest-energy samples plus the LDA posterior of the true class (ETran, unscaled sum)",
    "ncti": "neural-collapse distance: LDA spread + NCC posterior − log class-wise nuclear norm (NCTI, unscaled)",
    "ped": "LogME on features moved by potential-energy descent (PED)",
}
_LABELS = dict(needs_labels=True, needs_features=True)
_REFERENCE = dict(needs_labels=False, needs_features=True, uses_target_features=True, supports_regression=True)
_GRAPHS = dict(needs_labels=False, needs_target_model=True, needs_graph=True, supports_regression=True,
               reference="Song et al., DEPARA, CVPR 2020")

register_estimator(Estimator(
    "logme", baselines.logme, supports_regression=True, label="LogME", description=_DESCRIPTIONS["logme"],
    reference="You et al., LogME, ICML 2021", **_LABELS,
    adapter=lambda s, t: baselines.logme(s.features, t.labels, regression=t.regression)))
register_estimator(Estimator(
    "leep", baselines.leep, needs_labels=True, needs_source_probs=True, label="LEEP",
    description=_DESCRIPTIONS["leep"], reference="Nguyen et al., LEEP, ICML 2020",
    adapter=lambda s, t: baselines.leep(s.probs, t.labels)))
register_estimator(Estimator(
    "nce", baselines.nce, needs_labels=True, needs_source_probs=True, label="NCE",
    description=_DESCRIPTIONS["nce"], reference="Tran et al., NCE, ICCV 2019",
    adapter=lambda s, t: baselines.nce(np.asarray(s.probs).argmax(axis=1), t.labels)))
register_estimator(Estimator(
    "hscore", baselines.h_score, label="H-score", aliases=("h_score", "h-score"),
    description=_DESCRIPTIONS["hscore"], reference="Bao et al., H-score, ICIP 2019", **_LABELS,
    adapter=lambda s, t: baselines.h_score(s.features, t.labels)))
register_estimator(Estimator(
    "transrate", baselines.transrate, label="TransRate", description=_DESCRIPTIONS["transrate"],
    reference="Huang et al., TransRate, ICML 2022", **_LABELS,
    adapter=lambda s, t: baselines.transrate(s.features, t.labels, eps=t.transrate_eps)))
register_estimator(Estimator(
    "rsa", baselines.rsa, label="RSA", description=_DESCRIPTIONS["rsa"],
    reference="Dwivedi & Roig, RSA, CVPR 2019", **_REFERENCE,
    adapter=lambda s, t: baselines.rsa(s.features, t.reference()[0])))
register_estimator(Estimator(
    "cka", baselines.linear_cka, label="CKA", aliases=("linear_cka", "lcka"), description=_DESCRIPTIONS["cka"],
    reference="Kornblith et al., CKA, ICML 2019", **_REFERENCE,
    adapter=lambda s, t: baselines.linear_cka(s.features, t.reference()[0])))
register_estimator(Estimator(
    "depara", _depara_parts, label="DEPARA", **_GRAPHS,
    description="S = V + λE: node (attribution map) plus λ times edge (probe-similarity rank) agreement of "
                "the source's and the target model's DEPARA graphs",
    adapter=lambda s, t: _depara_parts(s.graph, t.graph, t.lam)))
register_estimator(Estimator(
    "depara_v", _depara_v, label="DEPARA-V", default=False, **_GRAPHS,
    description="node similarity V alone (mean cosine of the probes' attribution maps)",
    adapter=lambda s, t: _depara_v(s.graph, t.graph)))
register_estimator(Estimator(
    "depara_e", _depara_e, label="DEPARA-E", default=False, **_GRAPHS,
    description="edge similarity E alone (Spearman of the probe-by-probe feature similarities)",
    adapter=lambda s, t: _depara_e(s.graph, t.graph)))



def depara_labels_edges(graph: "Graph | None" = None, features: np.ndarray | None = None) -> np.ndarray:
    """The source edges the label-graph score compares, built as the frozen defaults say.

    With the frozen ``DEFAULT_EDGE_FEATURES = "flat"`` and ``DEFAULT_EDGE_SCALE = "centred"`` these are the DEPARA
    graph's own edges (``graph.edges``); otherwise :func:`depara.core.similarity_edges.probe_edges` of ``features`` (the
    source's layer output on the probes: N×C×H×W, or already pooled N×C for ``"pooled"``).
    """
    from ..core.similarity_edges import probe_edges
    from ..options import DEFAULT_EDGE_FEATURES, DEFAULT_EDGE_SCALE

    if (DEFAULT_EDGE_FEATURES, DEFAULT_EDGE_SCALE) == ("flat", "centred") and graph is not None:
        return np.asarray(graph.edges)
    if features is None:
        raise DeparaError(f"method depara_labels: needs the source's features on the probes (edges of "
                          f"{DEFAULT_EDGE_FEATURES}, {DEFAULT_EDGE_SCALE} features)")
    return probe_edges(features, pooling=DEFAULT_EDGE_FEATURES, scale=DEFAULT_EDGE_SCALE)


def _depara_labels(edges, labels, comparison: str | None = None) -> float:
    """The label-graph DEPARA score of one source: :func:`depara.core.similarity_edges.label_agreement` of its probe edges
    (:func:`depara_labels_edges`) with the probes' class labels, by the frozen comparison
    (:data:`depara.options.DEFAULT_EDGE_COMPARISON`) unless ``comparison`` is given."""
    from ..core.similarity_edges import label_agreement
    from ..options import DEFAULT_EDGE_COMPARISON

    return label_agreement(edges, labels, comparison or DEFAULT_EDGE_COMPARISON)


def depara_labels_resampled(edges, labels, idx_sets: np.ndarray) -> np.ndarray:
    """``depara_labels`` on each resample of the probes (R×N indices; row 0 the identity = the point estimate),
    by the frozen comparison: :func:`depara.core.similarity_edges.resampled_label_agreement`. (R,) float array."""
    from ..core.similarity_edges import resampled_label_agreement
    from ..options import DEFAULT_EDGE_COMPARISON

    return resampled_label_agreement(edges, labels, DEFAULT_EDGE_COMPARISON, idx_sets)


# Through the registry (the harness, `depara score`) it reads the source's features on the LABELLED samples: the
# labels belong to those samples, while a source's DEPARA graph there is built on a separate probe set (for the
# target-model terms), so its edges cannot be paired with the labels. With the frozen flat, centred handling the
# edges of the features are the DEPARA graph's own edges at that layer; `depara.select` builds its graphs on the
# labelled images themselves and passes them to depara_labels_edges directly.
register_estimator(Estimator(
    "depara_labels", _depara_labels, label="DEPARA-labels", default=True, needs_labels=True,
    needs_features=True,
    reference="Song et al., DEPARA, CVPR 2020 (edge term against the label graph)",
    description="agreement of the source's probe graph with the label graph (Graph.from_labels) by the frozen "
                "edge comparison; needs the samples' class labels, no target model",
    adapter=lambda s, t: _depara_labels(depara_labels_edges(None, s.features), t.labels)))

# The recent label-based peers (numpy/scipy; see docs/estimators-recent.md and docs/estimators-recent-b.md).
# Each is a function of (features, labels) only; none supports regression.
for _name, _fn, _label, _ref in (
        ("sfda", baselines.sfda, "SFDA", "Shao et al., SFDA, ECCV 2022"),
        ("nleep", baselines.nleep, "NLEEP", "Li et al., NLEEP, CVPR 2021"),
        ("parc", baselines.parc, "PARC", "Bolya et al., PARC, NeurIPS 2021"),
        ("gbc", baselines.gbc, "GBC", "Pándy et al., GBC, CVPR 2022"),
        ("pactran", baselines.pactran_gaussian, "PACTran-G", "Ding et al., PACTran, ECCV 2022"),
        ("etran", baselines.etran, "ETran", "Gholami et al., ETran, ICCV 2023"),
        ("ncti", baselines.ncti, "NCTI", "Wang et al., NCTI, ICCV 2023"),
        ("ped", baselines.ped, "PED", "Li et al., PED, ICCV 2023")):
    register_estimator(Estimator(
        _name, _fn, label=_label, description=_DESCRIPTIONS[_name], reference=_ref, **_LABELS,
        adapter=lambda s, t, _fn=_fn: _fn(s.features, t.labels)))

# The plain baseline every claim needs (depara.estimators.knn_baseline): opt-in, so default runs keep their columns.
register_estimator(Estimator(
    "knn", knn_baseline.knn_accuracy, label="k-NN accuracy", aliases=("knn_accuracy",), default=False,
    description="leave-one-out k-NN accuracy of the labels in the source's standardised features",
    reference="Plain baseline; cf. arXiv 2503.18528", **_LABELS,
    adapter=lambda s, t: knn_baseline.knn_accuracy(s.features, t.labels)))
