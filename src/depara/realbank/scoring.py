"""Scoring every source for one target of the real-image bank: the peers and the DEPARA variants.

What a scorer may see is what a practitioner has: the target's *labelled training set* (the seed-0 split's train
images; never the test images) and the source models. From it:

- **peers**: LogME, H-score, TransRate (source representation + labels), LEEP, NCE (source head + labels), RSA and
  linear CKA against the one-hot labels (``(labels)``) and against a quickly trained target model's representation
  (``(target model)``, the label-free use of RSA/CKA), all through :func:`depara.harness.score_sources`;
- **DEPARA variants**, on probes = the first ``n_probe`` labelled images, each source's graph at its representation
  (``stage3``): against the **label graph** (:meth:`depara.graph.Graph.from_labels`; edge term only), against the
  **quick target model**'s graph (V, E, V + λE for the paper's and the previous library settings), the **hybrid**
  ``α·V + (1 − w)·E_model + w·E_label`` and the **frozen default** (the α, w and node read from
  ``configs/defaults.toml``).

The quick target model is a small VGG-style net trained from scratch on the labelled set for a fixed number of
steps (its cost is part of the scoring cost).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..estimators import estimator_names, get_estimator
from ..labels import depara_score, edge_similarities, hybrid_edge_similarity, label_edges
from .models import REP_LAYER, Net, logits, pooled_features

#: The peer estimators scored on every target: every registered estimator that needs no graph (issue 12's recent
#: ones included), by their registry labels; RSA/CKA against the labels and against a quick target model.
PEER_METHODS = estimator_names(default=True, needs_graph=False)
_HARNESS = {m: get_estimator(m).label for m in PEER_METHODS}
PEERS = tuple(_HARNESS[m] + " (labels)" if m in ("rsa", "cka") else _HARNESS[m] for m in PEER_METHODS) \
    + ("RSA (target model)", "CKA (target model)")
FROZEN = "DEPARA (frozen default)"
LABEL = "DEPARA-label (E vs label graph)"
HYBRID = "DEPARA hybrid (V+E model, E labels, w=0.5)"
PAPER = "DEPARA (paper: target model, sum/mean, λ=0.25)"
OLD_DEFAULT = "DEPARA (previous default: target model, l2/mean, λ=1)"
E_MODEL = "DEPARA-E (target model)"
V_MODEL = "DEPARA-V (target model, l2/mean)"
DEPARA_VARIANTS = (FROZEN, LABEL, HYBRID, PAPER, OLD_DEFAULT, E_MODEL, V_MODEL)


@dataclass(frozen=True)
class Defaults:
    """The frozen DEPARA default (``configs/defaults.toml``): node definition, node weight α, label weight w."""

    node_scalar: str = "l2"
    node_reduction: str = "mean"
    node_weight: float = 0.0
    label_weight: float = 1.0
    layer: str = "representation"

    @property
    def needs_target_model(self) -> bool:
        return self.label_weight < 1.0 or self.node_weight > 0.0

    def describe(self) -> str:
        return (f"α·V + (1−w)·E_model + w·E_labels with α={self.node_weight:g}, w={self.label_weight:g}, "
                f"node {self.node_scalar}/{self.node_reduction}")


def train_quick_target(x: np.ndarray, y: np.ndarray, *, steps: int, width: int, seed: int) -> Net:
    """A small VGG-style net trained from scratch on the labelled set (Adam 2e-3, batch 32, ``steps`` steps)."""
    torch.manual_seed(seed)
    net = Net("vgg", int(y.max()) + 1, width)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    rng = np.random.default_rng([seed, 5])
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    net.train()
    for _ in range(steps):
        idx = torch.from_numpy(rng.integers(0, len(y), size=min(32, len(y))))
        loss = F.cross_entropy(net(xt[idx]), yt[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def _node_maps(body, x: torch.Tensor, scalar: str, reduction: str) -> np.ndarray:
    from ..extract import attribution_maps

    raw = torch.cat([attribution_maps(body, x[i:i + 64], REP_LAYER, scalar=scalar) for i in range(0, len(x), 64)])
    raw = raw.abs() if reduction == "abs_mean" else raw
    return raw.mean(dim=1).flatten(1).double().numpy()


#: ``Defaults.layer`` → the stage of the zoo's models whose features give the edges
LAYERS = {"representation": REP_LAYER, "below-representation": "stage2"}


def _edges(body, x: torch.Tensor, layer: str = REP_LAYER) -> tuple[np.ndarray, np.ndarray]:
    """(DEPARA edges = centred cosine of the flattened features at ``layer``, those features)."""
    from ..graph import _edges_from_features

    stages = list(dict(body.named_children()))
    upto = body[:stages.index(layer) + 1]
    with torch.no_grad():
        f = torch.cat([upto(x[i:i + 256]) for i in range(0, len(x), 256)]).flatten(1).double().numpy()
    return _edges_from_features(f, center=True, edge="cosine"), f


def _v(src_nodes: np.ndarray, tgt_nodes: np.ndarray) -> float:
    from ..graph_similarity import normalized_nodes

    return float(np.einsum("ij,ij->i", normalized_nodes(src_nodes), normalized_nodes(tgt_nodes)).mean())


def score_target(nets: dict, x_train: np.ndarray, y_train: np.ndarray, *, defaults: Defaults, n_probe: int,
                 quick_steps: int, quick_width: int, seed: int) -> tuple[dict[str, np.ndarray], dict]:
    """Every scorer's score of every source (``{scorer: (S,) array in nets order}``) and timing info."""
    from ..harness import SourceInputs, score_sources
    from ..baselines import linear_cka, rsa

    names = list(nets)
    t0 = time.perf_counter()
    y = np.unique(y_train, return_inverse=True)[1].astype(np.int64)
    # Probes: a seeded random subset of the labelled images (the split is sorted by pool index, often by class).
    pick = np.sort(np.random.default_rng([seed, 17]).permutation(len(y))[:n_probe])
    probes = torch.from_numpy(x_train[pick])
    y_probe = y[pick]
    # Peers on the labelled set.
    sources = {}
    for n in names:
        f = pooled_features(nets[n].body, x_train)
        z = logits(nets[n], x_train)
        p = np.exp(z - z.max(axis=1, keepdims=True))
        sources[n] = SourceInputs(features=f, probs=p / p.sum(axis=1, keepdims=True))
    table = score_sources(sources, y, methods=list(PEER_METHODS))
    scores = {(_HARNESS[m] + " (labels)" if m in ("rsa", "cka") else _HARNESS[m]): table.scores[m]
              for m in table.methods}
    t_peers = time.perf_counter() - t0

    # Graph parts on the probes: node maps for each node definition used, edges, flattened representation.
    t1 = time.perf_counter()
    node_opts = {("l2", "mean"), ("sum", "mean"), (defaults.node_scalar, defaults.node_reduction)}
    src_nodes = {n: {o: _node_maps(nets[n].body, probes, *o) for o in node_opts} for n in names}
    src_edges, src_feats = {}, {}
    for n in names:
        src_edges[n], src_feats[n] = _edges(nets[n].body, probes)
    lab = label_edges(y_probe)
    e_label = edge_similarities([src_edges[n] for n in names], lab)
    layer = LAYERS[defaults.layer]
    if layer != REP_LAYER:  # the frozen default reads another layer's edges
        src_edges_d = {n: _edges(nets[n].body, probes, layer)[0] for n in names}
        e_label_d = edge_similarities([src_edges_d[n] for n in names], lab)
    else:
        src_edges_d, e_label_d = src_edges, e_label
    t_graphs = time.perf_counter() - t1

    t2 = time.perf_counter()
    tgt = train_quick_target(x_train, y, steps=quick_steps, width=quick_width, seed=seed)
    t_quick = time.perf_counter() - t2
    t3 = time.perf_counter()
    tgt_nodes = {o: _node_maps(tgt.body, probes, *o) for o in node_opts}
    tgt_edges, tgt_feats = _edges(tgt.body, probes)
    e_model = edge_similarities([src_edges[n] for n in names], tgt_edges)
    e_model_d = (e_model if layer == REP_LAYER else
                 edge_similarities([src_edges_d[n] for n in names], _edges(tgt.body, probes, layer)[0]))
    v = {o: np.array([_v(src_nodes[n][o], tgt_nodes[o]) for n in names]) for o in node_opts}
    scores["RSA (target model)"] = np.array([rsa(src_feats[n], tgt_feats) for n in names])
    scores["CKA (target model)"] = np.array([linear_cka(src_feats[n], tgt_feats) for n in names])
    t_target_graph = time.perf_counter() - t3

    dflt = (defaults.node_scalar, defaults.node_reduction)
    scores[FROZEN] = depara_score(v[dflt], hybrid_edge_similarity(e_model_d, e_label_d, defaults.label_weight),
                                  defaults.node_weight)
    scores[LABEL] = e_label
    scores[HYBRID] = v[("l2", "mean")] + hybrid_edge_similarity(e_model, e_label, 0.5)
    scores[PAPER] = v[("sum", "mean")] + 0.25 * e_model
    scores[OLD_DEFAULT] = v[("l2", "mean")] + 1.0 * e_model
    scores[E_MODEL] = e_model
    scores[V_MODEL] = v[("l2", "mean")]
    # Cost of the frozen default alone: the label graph needs no target model, the others do.
    t_frozen = t_graphs + ((t_quick + t_target_graph) if defaults.needs_target_model else 0.0)
    info = {"seconds_peers": t_peers, "seconds_source_graphs": t_graphs, "seconds_quick_target": t_quick,
            "seconds_target_graph_and_rsa": t_target_graph, "seconds_frozen_default": t_frozen,
            "seconds_total": time.perf_counter() - t0, "n_probe": int(len(probes)), "n_labelled": int(len(y))}
    return scores, info
