"""Scoring every source for one target of the real-image bank: the peers and the DEPARA variants.

What a scorer may see is what a practitioner has: the target's *labelled training set* (the seed-0 split's train
images; never the test images) and the source models. From it:

- **peers**: LogME, H-score, TransRate (source representation + labels), LEEP, NCE (source head + labels), RSA and
  linear CKA against the one-hot labels (``(labels)``) and against a quickly trained target model's representation
  (``(target model)``, the label-free use of RSA/CKA), all through :func:`depara.selection.harness.score_sources`;
- **DEPARA variants**, on probes = the first ``n_probe`` labelled images, each source's graph at its representation
  (``stage3``): against the **label graph** (:meth:`depara.core.graph.Graph.from_labels`; edge term only), against the
  **quick target model**'s graph (V, E, V + λE for the paper's and the previous library settings), the **hybrid**
  ``α·V + (1 − w)·E_model + w·E_label`` and the **frozen default** (the α, w, node and edge handling read from
  :mod:`depara.options`; its label-graph term is the registered estimator ``depara_labels``);
- the **label family** of issue 10 (:mod:`depara.core.similarity_edges`), each source's graph at its representation against
  the label graph: comparison global / per_probe / knn × features flat / pooled × dimensions centred /
  standardised × probes ``subset`` (the ``n_probe`` probes) / ``labelled`` (every labelled image, at most 500),
  named ``DEPARA-label [comparison, features, scale, probes]`` (the global / flat / centred / subset member is
  ``DEPARA-label (E vs label graph)``, the previous frozen default); and the target model's E by the two local
  comparisons.

The quick target model is a small VGG-style net trained from scratch on the labelled set for a fixed number of
steps (its cost is part of the scoring cost).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ...estimators.registry import estimator_names, get_estimator
from ...core.similarity_edges import COMPARISONS, POOLINGS, EDGE_SCALES, graph_agreement, label_agreement, probe_edges
from ...core.labels import depara_score, edge_similarities, hybrid_edge_similarity, label_edges
from .models import REP_LAYER, Net, logits, pooled_features

#: The peer estimators scored on every target: every registered estimator that needs no graph (issue 12's recent
#: ones included), by their registry labels; RSA/CKA against the labels and against a quick target model.
PEER_METHODS = estimator_names(default=True, needs_graph=False)


def _peer_row(method: str) -> str:
    """A peer's row name: its registry label, with ``(labels)`` for RSA/CKA (also scored against a target model)."""
    label = get_estimator(method).label
    return label + " (labels)" if method in ("rsa", "cka") else label


PEERS = tuple(_peer_row(m) for m in PEER_METHODS) + ("RSA (target model)", "CKA (target model)")
FROZEN = "DEPARA (frozen default)"
LABEL = "DEPARA-label (E vs label graph)"
HYBRID = "DEPARA hybrid (V+E model, E labels, w=0.5)"
PAPER = "DEPARA (paper: target model, sum/mean, λ=0.25)"
OLD_DEFAULT = "DEPARA (previous default: target model, l2/mean, λ=1)"
E_MODEL = "DEPARA-E (target model)"
V_MODEL = "DEPARA-V (target model, l2/mean)"
PROBE_SETS = ("subset", "labelled")
MAX_LABELLED_PROBES = 500
#: The previous frozen default's edge handling (today's DEPARA graph): its label-family member is LABEL.
STATUS_QUO = ("global", "flat", "centred", "subset")


def family_name(comparison: str, features: str, scale: str, probes: str) -> str:
    """Row name of a label-family candidate (the status-quo member is :data:`LABEL`)."""
    if (comparison, features, scale, probes) == STATUS_QUO:
        return LABEL
    return f"DEPARA-label [{comparison}, {features}, {scale}, {probes}]"


LABEL_FAMILY = tuple(family_name(c, f, s, p) for c in COMPARISONS for f in POOLINGS for s in EDGE_SCALES
                     for p in PROBE_SETS)
E_MODEL_LOCAL = tuple(f"DEPARA-E (target model, {c})" for c in COMPARISONS[1:])
DEPARA_VARIANTS = (FROZEN, HYBRID, PAPER, OLD_DEFAULT, E_MODEL, *E_MODEL_LOCAL, V_MODEL) + LABEL_FAMILY


@dataclass(frozen=True)
class Defaults:
    """A DEPARA default (the frozen one: :func:`.bench.frozen_defaults`): node definition, node weight α, label
    weight w, layer and edge handling."""

    node_scalar: str = "l2"
    node_reduction: str = "mean"
    node_weight: float = 0.0
    label_weight: float = 1.0
    layer: str = "representation"
    edge_comparison: str = "global"
    edge_features: str = "flat"
    edge_scale: str = "centred"
    probes: str = "subset"

    @property
    def needs_target_model(self) -> bool:
        return self.label_weight < 1.0 or self.node_weight > 0.0

    def describe(self) -> str:
        return (f"α·V + (1−w)·E_model + w·E_labels with α={self.node_weight:g}, w={self.label_weight:g}, "
                f"node {self.node_scalar}/{self.node_reduction}, layer {self.layer}; E_labels by "
                f"{self.edge_comparison} comparison of {self.edge_features}/{self.edge_scale} features on the "
                f"{self.probes} probes")


def train_steps(net: torch.nn.Module, x: np.ndarray, y: np.ndarray, loss, *, steps: int, lr: float,
                rng: np.random.Generator, batch: int = 32) -> torch.nn.Module:
    """The quick-training loop shared by the real-image bank and ``benchmarks/choose_defaults.py``: Adam (``lr``),
    ``steps`` steps on batches of ``min(batch, N)`` drawn with replacement by ``rng``, ``loss(net(x_b), y_b)`` a
    scalar; then eval mode and frozen parameters. Returns ``net``."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    net.train()
    for _ in range(steps):
        idx = torch.from_numpy(rng.integers(0, len(x), size=min(batch, len(x))))
        value = loss(net(xt[idx]), yt[idx])
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def train_quick_target(x: np.ndarray, y: np.ndarray, *, steps: int, width: int, seed: int) -> Net:
    """A small VGG-style net trained from scratch on the labelled set (Adam 2e-3, batch 32, ``steps`` steps)."""
    torch.manual_seed(seed)
    net = Net("vgg", int(y.max()) + 1, width)
    return train_steps(net, x, y, F.cross_entropy, steps=steps, lr=2e-3, rng=np.random.default_rng([seed, 5]))


def node_maps(body, x: torch.Tensor, scalar: str, reduction: str) -> np.ndarray:
    """DEPARA's node maps at the representation: gradient×input of ``scalar`` (N × H·W, channel ``reduction``)."""
    from ...extraction.extract import attribution_maps

    raw = torch.cat([attribution_maps(body, x[i:i + 64], REP_LAYER, scalar=scalar) for i in range(0, len(x), 64)])
    raw = raw.abs() if reduction == "abs_mean" else raw
    return raw.mean(dim=1).flatten(1).double().numpy()


#: ``Defaults.layer`` → the stage of the zoo's models whose features give the edges
LAYERS = {"representation": REP_LAYER, "below-representation": "stage2"}


def stage_edges(body, x: torch.Tensor, layer: str = REP_LAYER) -> tuple[np.ndarray, np.ndarray]:
    """(DEPARA edges = centred cosine of the flattened features at ``layer``, those features)."""
    from ...core.edges import edges_from_features

    out = stage_output(body, x, layer)
    f = out.reshape(len(out), -1).astype(np.float64)
    return edges_from_features(f, center=True, edge="cosine"), f


def stage_output(body, x, layer: str = REP_LAYER) -> np.ndarray:
    """The output of stage ``layer`` (N×C×H×W float32 numpy) of images ``x`` (N×3×32×32 numpy or tensor)."""
    stages = list(dict(body.named_children()))
    upto = body[:stages.index(layer) + 1]
    x = torch.as_tensor(x)
    with torch.no_grad():
        return torch.cat([upto(x[i:i + 256]) for i in range(0, len(x), 256)]).float().numpy()


def probe_rows(n_labelled: int, n_probe: int, probes: str, seed: int) -> np.ndarray:
    """Indices of the labelled images used as probes: a seeded random ``n_probe`` subset (sorted; the split is
    sorted by pool index, often by class) or every labelled image up to :data:`MAX_LABELLED_PROBES`."""
    if probes == "labelled":
        return np.arange(min(n_labelled, MAX_LABELLED_PROBES))
    return np.sort(np.random.default_rng([seed, 17]).permutation(n_labelled)[:n_probe])


def frozen_label_scores(nets: dict, x_train: np.ndarray, y: np.ndarray, defaults: "Defaults", *, n_probe: int,
                        seed: int) -> np.ndarray:
    """The frozen default's label-graph term for every source: each source's stage output on the frozen probes,
    edges by the frozen feature handling, then the registered ``depara_labels`` estimator (the one implementation
    :func:`depara.select` uses) with the frozen comparison."""
    est = get_estimator("depara_labels")
    rows = probe_rows(len(y), n_probe, defaults.probes, seed)
    layer = LAYERS[defaults.layer]
    return np.array([est.fn(probe_edges(stage_output(nets[n].body, x_train[rows], layer),
                                        pooling=defaults.edge_features, scale=defaults.edge_scale),
                            y[rows], defaults.edge_comparison) for n in nets])


def node_agreement(src_nodes: np.ndarray, tgt_nodes: np.ndarray) -> float:
    """DEPARA's node term: the mean cosine between the two graphs' normalised node maps, probe by probe."""
    from ...core.similarity import normalized_nodes

    return float(np.einsum("ij,ij->i", normalized_nodes(src_nodes), normalized_nodes(tgt_nodes)).mean())


def peer_scores(nets: dict, x_train: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Every peer that reads the labelled set (``{peer label: (S,) scores in nets order}``): each source's pooled
    representation and softmax head through :func:`depara.selection.harness.score_sources`."""
    from ...selection.harness import SourceInputs, score_sources

    sources = {}
    for n in nets:
        f = pooled_features(nets[n].body, x_train)
        z = logits(nets[n], x_train)
        p = np.exp(z - z.max(axis=1, keepdims=True))
        sources[n] = SourceInputs(features=f, probs=p / p.sum(axis=1, keepdims=True))
    table = score_sources(sources, y, methods=list(PEER_METHODS))
    return {_peer_row(m): table.scores[m] for m in table.methods}


def label_family_scores(nets: dict, x_train: np.ndarray, y: np.ndarray, *, n_probe: int,
                        seed: int) -> dict[str, np.ndarray]:
    """The label family at the representation: every (comparison, features, edge scale, probe set) member's scores
    (``{family_name(...): (S,) in nets order}``)."""
    raw = {n: stage_output(nets[n].body, x_train) for n in nets}
    scores = {}
    for ps in PROBE_SETS:
        rows = probe_rows(len(y), n_probe, ps, seed)
        for fe in POOLINGS:
            for edge_scale in EDGE_SCALES:
                ed = {n: probe_edges(raw[n][rows], pooling=fe, scale=edge_scale) for n in nets}
                for comp in COMPARISONS:
                    scores[family_name(comp, fe, edge_scale, ps)] = np.array(
                        [label_agreement(ed[n], y[rows], comp) for n in nets])
    return scores


def score_target(nets: dict, x_train: np.ndarray, y_train: np.ndarray, *, defaults: Defaults, n_probe: int,
                 quick_steps: int, quick_width: int, seed: int) -> tuple[dict[str, np.ndarray], dict]:
    """Every scorer's score of every source (``{scorer: (S,) array in nets order}``) and timing info."""
    from ...estimators.baselines import linear_cka, rsa

    names = list(nets)
    t0 = time.perf_counter()
    y = np.unique(y_train, return_inverse=True)[1].astype(np.int64)
    # Probes: a seeded random subset of the labelled images (the split is sorted by pool index, often by class).
    pick = probe_rows(len(y), n_probe, "subset", seed)
    probes = torch.from_numpy(x_train[pick])
    y_probe = y[pick]
    scores = peer_scores(nets, x_train, y)  # peers on the labelled set
    t_peers = time.perf_counter() - t0

    # Graph parts on the probes: node maps for each node definition used, edges, flattened representation.
    t1 = time.perf_counter()
    node_opts = {("l2", "mean"), ("sum", "mean"), (defaults.node_scalar, defaults.node_reduction)}
    src_nodes = {n: {o: node_maps(nets[n].body, probes, *o) for o in node_opts} for n in names}
    src_edges, src_feats = {}, {}
    for n in names:
        src_edges[n], src_feats[n] = stage_edges(nets[n].body, probes)
    lab = label_edges(y_probe)
    e_label = edge_similarities([src_edges[n] for n in names], lab)
    layer = LAYERS[defaults.layer]
    # the frozen default's model term (when it has one) reads its own layer's edges
    src_edges_d = src_edges if layer == REP_LAYER or not defaults.needs_target_model else \
        {n: stage_edges(nets[n].body, probes, layer)[0] for n in names}
    t_graphs = time.perf_counter() - t1

    # The label family at the representation: every (comparison, features, scale, probes).
    t4 = time.perf_counter()
    scores.update(label_family_scores(nets, x_train, y, n_probe=n_probe, seed=seed))
    t_family = time.perf_counter() - t4
    # The frozen default's label term, timed on its own (forward pass over its probes, edges, comparison).
    t5 = time.perf_counter()
    e_label_frozen = frozen_label_scores(nets, x_train, y, defaults, n_probe=n_probe, seed=seed)
    t_frozen_label = time.perf_counter() - t5

    t2 = time.perf_counter()
    tgt = train_quick_target(x_train, y, steps=quick_steps, width=quick_width, seed=seed)
    t_quick = time.perf_counter() - t2
    t3 = time.perf_counter()
    tgt_nodes = {o: node_maps(tgt.body, probes, *o) for o in node_opts}
    tgt_edges, tgt_feats = stage_edges(tgt.body, probes)
    e_model = edge_similarities([src_edges[n] for n in names], tgt_edges)
    e_model_d = (e_model if src_edges_d is src_edges else
                 edge_similarities([src_edges_d[n] for n in names], stage_edges(tgt.body, probes, layer)[0]))
    v = {o: np.array([node_agreement(src_nodes[n][o], tgt_nodes[o]) for n in names]) for o in node_opts}
    for comp, name in zip(COMPARISONS[1:], E_MODEL_LOCAL):
        scores[name] = np.array([graph_agreement(src_edges[n], tgt_edges, comp) for n in names])
    scores["RSA (target model)"] = np.array([rsa(src_feats[n], tgt_feats) for n in names])
    scores["CKA (target model)"] = np.array([linear_cka(src_feats[n], tgt_feats) for n in names])
    t_target_graph = time.perf_counter() - t3

    dflt = (defaults.node_scalar, defaults.node_reduction)
    scores[FROZEN] = depara_score(v[dflt], hybrid_edge_similarity(e_model_d, e_label_frozen, defaults.label_weight),
                                  defaults.node_weight)
    assert np.allclose(scores[LABEL], e_label)  # the family's status-quo member is the old label-graph row
    scores[HYBRID] = v[("l2", "mean")] + hybrid_edge_similarity(e_model, e_label, 0.5)
    scores[PAPER] = v[("sum", "mean")] + 0.25 * e_model
    scores[OLD_DEFAULT] = v[("l2", "mean")] + 1.0 * e_model
    scores[E_MODEL] = e_model
    scores[V_MODEL] = v[("l2", "mean")]
    # Cost of the frozen default alone: its own label-graph pass; a target model (and, with α > 0, the node maps
    # of the source graphs) only when the defaults need one.
    t_frozen = t_frozen_label + ((t_graphs + t_quick + t_target_graph) if defaults.needs_target_model else 0.0)
    info = {"seconds_peers": t_peers, "seconds_source_graphs": t_graphs, "seconds_quick_target": t_quick,
            "seconds_label_family": t_family, "seconds_frozen_label_term": t_frozen_label,
            "seconds_target_graph_and_rsa": t_target_graph, "seconds_frozen_default": t_frozen,
            "seconds_total": time.perf_counter() - t0, "n_probe": int(len(probes)), "n_labelled": int(len(y))}
    return scores, info
