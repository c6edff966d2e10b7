"""Estimators from a head's posteriors and the target labels: LEEP and NCE (the source model's own head), NLEEP
(the posteriors of a Gaussian mixture fitted to the source's features). numpy/scipy; NLEEP also scikit-learn.
"""

from __future__ import annotations

import numpy as np
from scipy.special import xlogy

from ..errors import DeparaError
from .checks import as_class_indices, as_features, one_hot_labels
from .registry import FEATURE_LABEL, HEAD, estimator

__all__ = ["leep", "nce", "nleep"]


@estimator("leep", tags=HEAD, label="LEEP",
           description="mean log expected empirical prediction of the source head's probabilities",
           reference="Nguyen et al., LEEP, ICML 2020",
           adapter=lambda s, t: leep(s.probs, t.labels))
def leep(source_probs, labels, *, atol: float = 1e-4) -> float:
    """LEEP: log expected empirical prediction.

    Nguyen, Hassner, Seeger, Archambeau, *LEEP: A New Measure to Evaluate Transferability of Learned
    Representations*, ICML 2020.

    Args:
        source_probs: N×Cs probabilities of the source model's own head on the target samples (softmax
            outputs, rows summing to 1 within ``atol``; not renormalised).
        labels: N target class indices 0..C−1, every class present.

    Returns:
        (1/N) Σ_i log Σ_z P̂(y_i | z) θ_z(x_i) with P̂(y | z) = P̂(y, z) / P̂(z) from the soft joint. ≤ 0; higher =
        better (0 = the source head's classes determine the target labels).

    A source class z that receives zero probability on every sample has no P̂(y | z); its term θ_z(x_i) is 0
    for every i, so it is left out (the references produce NaN there).
    """
    p = as_features(source_probs, "source_probs")
    n = p.shape[0]
    idx, n_classes = as_class_indices(labels, "labels", n)
    if np.any(p < 0):
        raise DeparaError(f"source_probs: negative probability in row {int(np.argwhere(p < 0)[0, 0])}")
    sums = p.sum(axis=1)
    bad = np.abs(sums - 1.0) > atol
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DeparaError(f"source_probs: row {i} sums to {sums[i]:.6g}, expected 1 (pass softmax probabilities, "
                          "not logits)")
    joint = one_hot_labels(idx, n_classes).T @ p / n  # C×Cs, P̂(y, z)
    p_z = joint.sum(axis=0)
    cond = np.divide(joint, p_z, out=np.zeros_like(joint), where=p_z > 0)  # P̂(y | z)
    eep = np.einsum("iz,iz->i", p, cond[idx])
    return float(np.mean(np.log(eep)))


@estimator("nce", tags=HEAD, label="NCE",
           description="negative conditional entropy H(Y | Z) of target labels given source argmax labels",
           reference="Tran et al., NCE, ICCV 2019",
           adapter=lambda s, t: nce(np.asarray(s.probs).argmax(axis=1), t.labels))
def nce(source_labels, labels) -> float:
    """NCE: negative conditional entropy of the target labels given the source model's labels.

    Tran, Nguyen, Hassner, *Transferability and Hardness of Supervised Classification Tasks*, ICCV 2019.

    Args:
        source_labels: N source-class indices ≥ 0 (usually the argmax of the source head on each target
            sample); they need not cover every source class.
        labels: N target class indices 0..C−1, every class present.

    Returns:
        −H(Y | Z) = Σ_{y,z} P̂(y, z) log P̂(y | z) in nats, ≤ 0; higher = better (0 = Z determines Y).
        0·log 0 is taken as 0 (the references add 1e-20 inside the log; the difference is below 1e-17).
    """
    z, _ = as_class_indices(source_labels, "source_labels", None, require_all=False)
    idx, n_classes = as_class_indices(labels, "labels", z.shape[0])
    n = z.shape[0]
    n_source = int(z.max()) + 1
    joint = np.bincount(idx * n_source + z, minlength=n_classes * n_source).reshape(n_classes, n_source) / n
    p_z = joint.sum(axis=0)
    cond = np.divide(joint, p_z, out=np.zeros_like(joint), where=p_z > 0)
    return float(np.sum(xlogy(joint, cond)))


@estimator("nleep", tags=FEATURE_LABEL, label="NLEEP",
           description="LEEP on the posteriors of a Gaussian mixture fitted to the (PCA-reduced) features",
           reference="Li et al., NLEEP, CVPR 2021",
           adapter=lambda s, t: nleep(s.features, t.labels))
def nleep(features, labels, *, components_per_class: int = 5, pca_energy: float | None = 0.8,
          log: bool = True, random_state: int | None = 0, covariance_type: str = "full",
          max_iter: int = 100) -> float:
    """NLEEP: LEEP with the posteriors of a Gaussian mixture fitted on the features as the "source head".

    Li, Zhang, Chen, Gong, Zhou, Wang, Wang, Chen, Hassner, Yang, *Ranking Neural Checkpoints*, CVPR 2021
    (Sec. 4, "N-LEEP"). Equal to ``NLEEP`` of TencentARC/SFDA ``metrics.py`` with ``log=False`` and the
    same seed (``np.random.seed(random_state)`` there).

    Args:
        features: N×D features of the source model on the target samples.
        labels: N target class indices 0..C−1, every class present (C ≥ 2).
        components_per_class: the mixture has K = components_per_class · C components (5 in the paper; the
            SFDA authors use 1 for Food and Pets).
        pca_energy: first reduce the features with PCA keeping this fraction of the variance (0.8 in the paper
            and in the SFDA repository; None = no PCA, as in google-research's ``stable_transfer`` NLEEP).
        log: True = the paper's LEEP, (1/N) Σ_i log Σ_k P̂(y_i | k) γ_ik. False = the SFDA repository's value,
            which leaves out the log: (1/N) Σ_i Σ_k P̂(y_i | k) γ_ik (a deviation from the paper; kept to match
            the published SFDA tables).
        random_state: seed of the mixture's k-means initialisation (sklearn ``GaussianMixture``); the value
            is deterministic for a fixed seed and changes from seed to seed (the spread is recorded in
            tests/data/estimator_references_a.json).
        covariance_type, max_iter: passed to ``sklearn.mixture.GaussianMixture`` ("full", 100 = the papers').

    Returns:
        NLEEP, ≤ 0 with ``log=True`` (in (0, 1] with ``log=False``); higher = better.

    Cost: PCA O(N D min(N, D)); EM O(max_iter · N K D'²) for full covariances in the D' PCA dimensions (the
    dominant cost: NLEEP is by far the slowest estimator here), memory O(K D'² + N K).
    """
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    f = as_features(features, "features")
    idx, n_classes = as_class_indices(labels, "labels", f.shape[0])
    if not (isinstance(components_per_class, (int, np.integer)) and components_per_class >= 1):
        raise DeparaError(f"components_per_class: expected a positive integer, got {components_per_class!r}")
    if pca_energy is not None and not 0.0 < pca_energy < 1.0:
        raise DeparaError(f"pca_energy: expected a fraction of variance in (0, 1) or None, got {pca_energy}")
    if covariance_type not in ("full", "tied", "diag", "spherical"):
        raise DeparaError(f"covariance_type: expected 'full', 'tied', 'diag' or 'spherical', got {covariance_type!r}")
    if not (isinstance(max_iter, (int, np.integer)) and max_iter >= 1):
        raise DeparaError(f"max_iter: expected a positive integer, got {max_iter!r}")
    n = f.shape[0]
    n_components = int(components_per_class) * n_classes
    if n < n_components:
        raise DeparaError(f"labels: NLEEP fits components_per_class·C = {n_components} Gaussians, which needs at "
                          f"least as many samples, got N = {n}")
    if pca_energy is not None:
        pca = PCA(n_components=pca_energy).fit(f)
        f = pca.transform(f)  # fit then transform, as the reference (fit_transform rounds differently)
    gmm = GaussianMixture(n_components=n_components, covariance_type=covariance_type, max_iter=max_iter,
                          random_state=random_state).fit(f)
    gamma = gmm.predict_proba(f)  # N×K, P(k | x_i)
    joint = one_hot_labels(idx, n_classes).T @ gamma / n  # C×K, P̂(y, k)
    p_k = joint.sum(axis=0)
    cond = np.divide(joint, p_k, out=np.zeros_like(joint), where=p_k > 0)  # P̂(y | k); empty k has no term
    eep = np.einsum("ik,ik->i", gamma, cond[idx])
    return float(np.mean(np.log(eep)) if log else np.mean(eep))
