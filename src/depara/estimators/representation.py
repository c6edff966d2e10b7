"""Estimators that compare two representations of the same samples: RSA and linear CKA (the source's features
against the target model's, or against the labels), PARC (the features' dissimilarities against the labels').
numpy/scipy; PARC also scikit-learn's PCA.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from ..errors import DeparaError
from .checks import as_class_indices, as_features, one_hot_labels
from .registry import FEATURE_LABEL, REPRESENTATION, estimator

__all__ = ["rsa", "linear_cka", "parc"]


def _pair_shapes(features_a, features_b) -> tuple[np.ndarray, np.ndarray]:
    a = as_features(features_a, "features_a", min_rows=3)
    b = as_features(features_b, "features_b", min_rows=3)
    if a.shape[0] != b.shape[0]:
        raise DeparaError(f"features_b: has {b.shape[0]} rows but features_a has {a.shape[0]} (one row per "
                          "sample, same samples in the same order)")
    return a, b


def _correlation_rdm(x: np.ndarray, name: str) -> np.ndarray:
    """Condensed (squareform order) correlation-distance RDM, 1 − Pearson between rows."""
    centred = x - x.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=1)
    if np.any(norms == 0):
        raise DeparaError(f"{name}: row {int(np.flatnonzero(norms == 0)[0])} is constant, its correlation "
                          "distance is undefined")
    unit = centred / norms[:, None]
    iu = np.triu_indices(x.shape[0], k=1)
    return 1.0 - (unit @ unit.T)[iu]


@estimator("rsa", tags=REPRESENTATION, label="RSA",
           description="Spearman between correlation-distance RDMs of two representations",
           reference="Dwivedi & Roig, RSA, CVPR 2019",
           adapter=lambda s, t: rsa(s.features, t.reference()[0]))
def rsa(features_a, features_b) -> float:
    """RSA: Spearman correlation between the representational dissimilarity matrices of two representations.

    Kriegeskorte, Mur, Bandettini, *Representational Similarity Analysis*, Front. Syst. Neurosci. 2008; as a
    transferability estimator, Dwivedi & Roig, *Representation Similarity Analysis for Efficient Task
    Taxonomy & Transfer Learning*, CVPR 2019 (the RSA baseline of DEPARA).

    Args:
        features_a, features_b: N×Da and N×Db representations of the same N ≥ 3 samples (any trailing shape is
            flattened per sample); no row may be constant.

    Returns:
        Spearman ρ (average ranks for ties) between the N(N−1)/2 upper-triangle entries of the two
        correlation-distance RDMs (1 − Pearson across feature dimensions), in [−1, 1]; higher = more similar.
        Symmetric in its arguments. Costs O(N²) memory.
    """
    a, b = _pair_shapes(features_a, features_b)
    ra = rankdata(_correlation_rdm(a, "features_a"))
    rb = rankdata(_correlation_rdm(b, "features_b"))
    ra -= ra.mean()
    rb -= rb.mean()
    den = np.sqrt((ra @ ra) * (rb @ rb))
    if den == 0:
        raise DeparaError("features_a/features_b: an RDM is constant (all samples equally dissimilar), "
                          "Spearman is undefined")
    return float((ra @ rb) / den)


@estimator("cka", tags=REPRESENTATION, label="CKA", aliases=('linear_cka', 'lcka'),
           description="linear centred kernel alignment of two representations",
           reference="Kornblith et al., CKA, ICML 2019",
           adapter=lambda s, t: linear_cka(s.features, t.reference()[0]))
def linear_cka(features_a, features_b) -> float:
    """Linear CKA: centred kernel alignment with linear kernels.

    Kornblith, Norouzi, Lee, Hinton, *Similarity of Neural Network Representations Revisited*, ICML 2019
    (eq. for linear CKA, the biased HSIC estimator).

    Args:
        features_a, features_b: N×Da and N×Db representations of the same N ≥ 3 samples.

    Returns:
        ‖B̃ᵀÃ‖²_F / (‖ÃᵀÃ‖_F ‖B̃ᵀB̃‖_F) with Ã, B̃ column-centred, in [0, 1]; higher = more similar. Symmetric,
        invariant to orthogonal transforms and isotropic scaling of either argument.
    """
    a, b = _pair_shapes(features_a, features_b)
    a = a - a.mean(axis=0, keepdims=True)
    b = b - b.mean(axis=0, keepdims=True)
    n, da = a.shape
    db = b.shape[1]
    if n * (da * db + da * da + db * db) <= n * n * (da + db + 1):
        cross = np.sum((b.T @ a) ** 2)
        norm_a = np.linalg.norm(a.T @ a)
        norm_b = np.linalg.norm(b.T @ b)
    else:  # N smaller than the widths: the N×N Gram matrices are cheaper
        ka, kb = a @ a.T, b @ b.T
        cross = np.sum(ka * kb)
        norm_a, norm_b = np.linalg.norm(ka), np.linalg.norm(kb)
    if norm_a == 0 or norm_b == 0:
        which = "features_a" if norm_a == 0 else "features_b"
        raise DeparaError(f"{which}: every column is constant, CKA is undefined")
    return float(cross / (norm_a * norm_b))


def _spearman_undefined() -> DeparaError:
    return DeparaError("features/labels: an RDM is constant (all pairs equally dissimilar), Spearman is undefined")


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt((a @ a) * (b @ b))
    if den == 0:
        raise _spearman_undefined()
    return float((a @ b) / den)


def _pearson_indicator(a: np.ndarray, mask: np.ndarray) -> float:
    """Pearson correlation of ``a`` with the 0/1 variable ``mask``, without forming it as floats."""
    m, size = int(mask.sum()), a.shape[0]
    centred = a - a.mean()
    den = np.sqrt((centred @ centred) * m * (1.0 - m / size))
    if den == 0:
        raise _spearman_undefined()
    return float(centred[mask].sum() / den)


@estimator("parc", tags=FEATURE_LABEL, label="PARC",
           description="100 x Spearman between the feature RDM and the label RDM (pairwise annotation correlation)",
           reference="Bolya et al., PARC, NeurIPS 2021",
           adapter=lambda s, t: parc(s.features, t.labels))
def parc(features, labels, *, n_dims: int | None = 32, random_state: int = 1919,
         reference_ties: bool = False) -> float:
    """PARC: pairwise annotation representation comparison.

    Bolya, Mittapalli, Hoffman, *Scalable Diverse Model Selection for Accessible Transfer Learning*, NeurIPS
    2021; equal to ``methods.PARC(n_dims=32)`` of the authors' code (dbolya/parc), the setting of their demo
    and of TencentARC/SFDA's ``PARC_Score``.

    Args:
        features: N×D features (N ≥ 3). They are reduced to ``n_dims`` dimensions with sklearn's randomized PCA
            (``random_state=1919``, ``iterated_power=1``, as the reference; n_dims is clipped to min(N, D), the
            reference clips to N only and fails when D < n_dims), or used as they are with ``n_dims=None``, then
            standardised per column (sklearn ``StandardScaler``).
        labels: N target class indices 0..C−1, every class present (C ≥ 2).
        reference_ties: reproduce the reference's label RDM (see below).

    Returns:
        100 · Spearman ρ between the upper triangles of the N×N RDMs 1 − corr(f_i, f_j) and 1 − corr(e_yi, e_yj),
        in [−100, 100] (the authors' percent scale); higher = better.

    The label RDM of one-hot rows takes exactly two values, 0 (same class) and C/(C − 1) (different classes),
    so ρ is computed here against that exact two-valued variable (ties averaged). The reference computes it as
    ``1 - np.corrcoef(one_hot)``, whose round-off splits each of the two values into near-equal ones (0 vs
    1.1e-16, or two values of C/(C − 1) one ulp apart); ``spearmanr`` then ranks that round-off as if it
    were data, which moves the score (by 0.6 % for C = 5 and from 19.1 to 5.4 for C = 37 in our measurements
    in the reference script). ``reference_ties=True`` reproduces the reference by building that matrix the
    same way (its value then depends on the BLAS's rounding).

    Cost: O(N² D') time for the N×N correlation, plus sorting the N(N − 1)/2 pairs, O(N² log N); O(N²) memory
    (N = 5,000: about 0.8 GB at the peak, mostly the ranking of the 12.5 M pairs).
    """
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    f = as_features(features, "features", min_rows=3)
    idx, n_classes = as_class_indices(labels, "labels", f.shape[0])
    n, d = f.shape
    if n_dims is not None:
        if not (isinstance(n_dims, (int, np.integer)) and n_dims >= 1):
            raise DeparaError(f"n_dims: expected a positive integer or None, got {n_dims!r}")
        f = PCA(n_components=min(int(n_dims), n, d), svd_solver="randomized", random_state=random_state,
                iterated_power=1).fit_transform(f)
    f = StandardScaler().fit_transform(f)
    ranks = rankdata(_correlation_rdm(f, "features"))
    upper = np.triu_indices(n, k=1)  # the RDMs' pair order (squareform)
    if reference_ties:
        rho = _pearson(ranks, rankdata((1.0 - np.corrcoef(one_hot_labels(idx, n_classes)))[upper]))
    else:
        # Ranks of a two-valued variable are an increasing affine map of it: Pearson with the indicator is ρ.
        rho = _pearson_indicator(ranks, (idx[:, None] != idx[None, :])[upper])
    return float(100.0 * rho)
