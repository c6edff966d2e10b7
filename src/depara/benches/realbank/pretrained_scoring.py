"""Every scorer of the pretrained bank on cached features: each (target, source, candidate layer) is scored on the
seed-0 train images' pooled features and labels only (what a practitioner has; never the test images).

- **peers**: the registered estimators that take (features, labels) — LogME, H-score, TransRate, PARC, GBC,
  PACTran, ETran, NCTI, PED, and RSA/CKA against the one-hot labels — plus the ``knn`` baseline (leave-one-out
  k-NN accuracy). Left out: SFDA and NLEEP (3–4 s per feature set each on 2 busy cores, 10× the others: the bank
  could not afford them in its time budget), LEEP and NCE (they need a head over the source's own classes, which
  the detectors and the orientation model do not have).
- **DEPARA label family** (:mod:`depara.core.similarity_edges`): the source's probe graph on the labelled images against the
  label graph, comparison ``global`` / ``per_probe`` / ``knn`` (k = 5, 10 or ⌊√N⌋) × dimensions ``centred`` /
  ``standardised``. The cache holds pooled features, so the ``flat`` features option is not in this space.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ...core.similarity_edges import EDGE_SCALES, label_agreement, probe_edges
from ...errors import DeparaError
from ...estimators.registry import SourceInputs, TargetInputs, get_estimator
from ..taskbank.cache import fingerprint, load_json_entry, save_json_entry

#: registry names of the peers scored (all take features and labels)
PEER_METHODS = ("logme", "hscore", "transrate", "parc", "gbc", "pactran", "etran", "ncti", "ped", "rsa", "cka", "knn")
KNN_KS = (5, 10, None)  # None: depara.core.similarity_edges.knn_k(N) = ⌊√N⌋
VERSION = 1


def member_name(comparison: str, scale: str, k: int | None = None) -> str:
    """Row name of a DEPARA label-family member, e.g. ``DEPARA-label [knn k=10, standardised]``."""
    comp = comparison if comparison != "knn" else f"knn k={'√N' if k is None else k}"
    return f"DEPARA-label [{comp}, {scale}]"


#: member name → (comparison, scale, k)
MEMBERS: dict[str, tuple[str, str, int | None]] = {
    member_name(c, s, k): (c, s, k)
    for s in EDGE_SCALES for c, ks in (("global", (None,)), ("per_probe", (None,)), ("knn", KNN_KS)) for k in ks}


def member_scores(features: np.ndarray, labels: np.ndarray, seconds: dict | None = None) -> dict[str, float]:
    """Every label-family member's score of one feature set (edges built once per scale; the edge time is
    counted in each member's run time added to ``seconds``)."""
    out = {}
    for scale in EDGE_SCALES:
        t0 = time.perf_counter()
        edges = probe_edges(features, pooling="pooled", scale=scale)
        t_edges = time.perf_counter() - t0
        for name, (comp, s, k) in MEMBERS.items():
            if s == scale:
                t1 = time.perf_counter()
                out[name] = label_agreement(edges, labels, comp, k)
                if seconds is not None:
                    seconds[name] = seconds.get(name, 0.0) + t_edges + time.perf_counter() - t1
    return out


def peer_scores(features: np.ndarray, labels: np.ndarray, seconds: dict | None = None) -> dict[str, float]:
    """Every peer's score (registry label → value; NaN where a peer refuses the input, e.g. a rank-deficient one);
    each peer's run time is added to ``seconds`` when given."""
    src, tgt = SourceInputs(features=np.asarray(features, np.float64)), TargetInputs(labels=labels)
    out = {}
    for m in PEER_METHODS:
        est = get_estimator(m)
        t0 = time.perf_counter()
        try:
            out[est.label] = float(est.score(src, tgt))
        except (DeparaError, np.linalg.LinAlgError, ValueError):
            out[est.label] = float("nan")
        if seconds is not None:
            seconds[est.label] = seconds.get(est.label, 0.0) + time.perf_counter() - t0
    return out


def score_pair(target: str, source: str, source_version: str, feats: dict[str, np.ndarray], train: np.ndarray,
               y: np.ndarray, cache_dir: Path) -> dict[str, dict[str, float]]:
    """scorer → {layer: score} of ``source`` on ``target`` from the train rows (cached)."""
    key = fingerprint({"source": source_version, "target": target, "train": np.asarray(train).tolist(),
                       "peers": PEER_METHODS, "members": list(MEMBERS), "v": VERSION})
    path = Path(cache_dir) / "scores" / target / f"{source}.json"
    hit = load_json_entry(path, key)
    if hit is not None:
        return hit["scores"]
    out: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {}
    yt = np.asarray(y)[train]
    for layer, f in feats.items():
        ft = np.asarray(f, np.float64)[train]
        for name, value in {**peer_scores(ft, yt, seconds), **member_scores(ft, yt, seconds)}.items():
            out.setdefault(name, {})[layer] = value
    save_json_entry(path, key, {"scores": out, "seconds": seconds})
    return out
