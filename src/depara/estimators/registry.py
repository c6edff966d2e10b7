"""The registry of transferability estimators: DEPARA and its peers, each declaring what it needs.

Modelled on timm's ``models/_registry.py``: every estimator is registered where it is defined, by the
:func:`estimator` decorator on its function (or :func:`register_estimator` for one built elsewhere), listed with
filters on what it needs (:func:`list_estimators`) and fetched by name or alias (:func:`get_estimator`). The
built-in estimators live one family per module (:mod:`~depara.estimators.evidence`,
:mod:`~depara.estimators.separability`, :mod:`~depara.estimators.head`, :mod:`~depara.estimators.representation`,
:mod:`~depara.estimators.depara_family`); importing :mod:`depara.estimators` registers them all, listed in the
order of :data:`BUILTIN_ORDER`. The harness (:func:`depara.estimators.scoring.score_sources`), ``depara score`` and
every benchmark iterate this registry instead of keeping their own list of names.

An :class:`Estimator` wraps a plain numpy function ``fn`` (for the peers ``fn(features, labels, ...) -> float``,
all of them also in :mod:`depara.estimators.baselines`; for DEPARA ``fn(graph, target_graph, lam)``),
**higher = more transferable** for every one, and declares its inputs by typed capability tags
(:class:`Tags`; each is also an attribute of the estimator):

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

from ..errors import DeparaError
from ..options import DEFAULT_LAMBDA

if TYPE_CHECKING:  # pragma: no cover
    from ..core.graph import Graph

__all__ = ["Estimator", "Tags", "SourceInputs", "TargetInputs", "estimator", "register_estimator", "list_estimators",
           "get_estimator", "estimator_names", "parse_estimators", "reference_representation", "BUILTIN_ORDER",
           "FEATURE_LABEL", "HEAD", "REPRESENTATION", "GRAPHS"]


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
class Tags:
    """What an estimator needs and supports (the table of the module docstring), as typed flags."""

    needs_labels: bool = False
    needs_source_probs: bool = False
    needs_target_model: bool = False
    needs_graph: bool = False
    needs_features: bool = False
    uses_target_features: bool = False
    supports_regression: bool = False


#: The tags of each family: features and labels (LogME, H-score, SFDA, …); a source head and labels (LEEP, NCE);
#: a representation compared with a reference one (RSA, CKA); DEPARA graphs of the source and a target model.
FEATURE_LABEL = Tags(needs_labels=True, needs_features=True)
HEAD = Tags(needs_labels=True, needs_source_probs=True)
REPRESENTATION = Tags(needs_features=True, uses_target_features=True, supports_regression=True)
GRAPHS = Tags(needs_target_model=True, needs_graph=True, supports_regression=True)


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
        from_terms: for the scores made of DEPARA's node term V and edge term E, ``from_terms(V, E, lam)`` gives the
            value from the two terms (a caller that holds V and E per resample, like ``depara select``'s bootstrap,
            scores without rebuilding graphs); None for the others.
        resampled: ``resampled(graph, features, labels, blocks)`` gives the value on many resamples of the probes
            at once: ``blocks`` is a list of R_k×M_k index arrays (e.g. the identity 1×N, then half-samples), the
            values of all their rows concatenated; each row scored as a probe set of its own (the label-graph score,
            PED); None for the others.
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
    from_terms: Callable[[float, float, float], float] | None = field(default=None, repr=False, compare=False)
    resampled: Callable[..., np.ndarray] | None = field(default=None, repr=False, compare=False)

    @property
    def tags(self) -> Tags:
        """This estimator's capability flags as one :class:`Tags`."""
        return Tags(**{name: getattr(self, name) for name in Tags.__dataclass_fields__})

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
#: The order in which the built-in estimators are listed (tables, figures, ``--method all``), whichever module
#: registers them first; estimators registered by users follow, in registration order.
BUILTIN_ORDER = ("logme", "leep", "nce", "hscore", "transrate", "rsa", "cka", "depara", "depara_v", "depara_e",
                 "depara_labels", "sfda", "nleep", "parc", "gbc", "pactran", "etran", "ncti", "ped", "knn")


def _listing_key(item: tuple[int, str]) -> tuple[int, int]:
    position, name = item
    return (BUILTIN_ORDER.index(name), 0) if name in BUILTIN_ORDER else (len(BUILTIN_ORDER), position)


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


def estimator(name: str, *, tags: Tags, label: str, description: str, reference: str,
              adapter: Callable[[SourceInputs, TargetInputs], float], aliases: tuple[str, ...] = (),
              default: bool = True, from_terms: Callable[[float, float, float], float] | None = None,
              resampled: Callable[..., np.ndarray] | None = None
              ) -> Callable[[Callable[..., float]], Callable[..., float]]:
    """Register the decorated function as the estimator ``name`` (like timm's ``@register_model``); returns the
    function unchanged. ``adapter(source, target)`` calls it from the common inputs; see :class:`Estimator`."""

    def register(fn: Callable[..., float]) -> Callable[..., float]:
        register_estimator(Estimator(name, fn, label=label, description=description, reference=reference,
                                     aliases=aliases, default=default, adapter=adapter, from_terms=from_terms,
                                     resampled=resampled,
                                     **{k: getattr(tags, k) for k in Tags.__dataclass_fields__}))
        return fn

    return register


def list_estimators(**needs: bool) -> list[Estimator]:
    """Registered estimators (:data:`BUILTIN_ORDER`, then registration order) whose attributes equal every
    ``needs`` value, e.g.
    ``list_estimators(needs_labels=False)`` (label-free) or ``list_estimators(supports_regression=True)``."""
    fields = set(Estimator.__dataclass_fields__)
    unknown = sorted(set(needs) - fields)
    if unknown:
        raise DeparaError(f"{unknown[0]}: not an estimator attribute (expected e.g. needs_labels, needs_graph, "
                          "supports_regression, default)")
    ordered = [_REGISTRY[name] for _, name in sorted(enumerate(_REGISTRY), key=_listing_key)]
    return [e for e in ordered if all(getattr(e, k) == v for k, v in needs.items())]


def estimator_names(**needs: bool) -> tuple[str, ...]:
    """Names of :func:`list_estimators` (same filters)."""
    return tuple(e.name for e in list_estimators(**needs))


def get_estimator(name: str) -> Estimator:
    """The estimator registered as ``name`` (or an alias; case-insensitive)."""
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        raise DeparaError(f"method: unknown estimator {name!r}; expected one of {', '.join(estimator_names())}")
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
                raise DeparaError(f"{what}: unknown method {part.strip()!r}; expected one of "
                                  f"{', '.join(estimator_names())}")
            if key not in out:
                out.append(key)
    if not out:
        raise DeparaError(f"{what}: no method given")
    return out
