"""Peer transferability estimators: LogME, LEEP, NCE, H-score, TransRate, RSA, linear CKA (numpy/scipy only),
and the recent SFDA, NLEEP, PARC, GBC (section "Recent estimators (A)"; NLEEP and PARC also use scikit-learn's
PCA / GaussianMixture / StandardScaler, as their authors' code does).

Every function takes numpy arrays and returns one Python float; for every one of them **higher = better**
(the source is predicted to transfer better to the target). Inputs are validated at the door: a bad input
raises a one-line :class:`~depara.errors.DeparaError` naming the argument.

Conventions shared by the label-based estimators (``logme``, ``leep``, ``nce``, ``h_score``, ``transrate``):

* ``features`` is N×D (any trailing shape is flattened per sample), finite, cast to float64.
* ``labels`` is a length-N vector of class indices 0..C−1 (integer-valued floats are accepted); every class
  0..C−1 must occur at least once and C ≥ 2. Remap arbitrary labels first, e.g. with
  ``np.unique(labels, return_inverse=True)[1]``.

Values equal the public reference implementations (thuml/LogME at commit 56551ca, ``tllib.ranking`` of
thuml/Transfer-Learning-Library at commit c4aa59e) on well-posed inputs to 1e-6 relative; where they
differ (LogME when rank(F) < D, H-score on singular covariances) each docstring says what is done and why.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
from scipy.special import xlogy
from scipy.stats import rankdata

from ..errors import DeparaError

__all__ = ["logme", "leep", "nce", "h_score", "transrate", "rsa", "linear_cka"]


# ----------------------------------------------------------------------------------------------- validation
def _as_features(x, name: str, *, min_rows: int = 2) -> np.ndarray:
    """Return ``x`` as a finite float64 N×D array (trailing dimensions flattened)."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise DeparaError(f"{name}: expected a numeric array, got {type(x).__name__}") from None
    if arr.ndim < 2:
        raise DeparaError(f"{name}: expected an N×D array (one row per sample), got shape {arr.shape}")
    arr = arr.reshape(arr.shape[0], -1)
    if arr.shape[0] < min_rows or arr.shape[1] < 1:
        raise DeparaError(f"{name}: expected at least {min_rows} rows and 1 column, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.argwhere(~np.isfinite(arr))[0, 0])
        raise DeparaError(f"{name}: contains NaN or inf (first in row {bad})")
    return arr


def _as_class_indices(y, name: str, n: int | None, *, require_all: bool = True,
                      min_classes: int = 2) -> tuple[np.ndarray, int]:
    """Return (int64 vector, C) for class indices 0..C−1; every class present when ``require_all``."""
    try:
        arr = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise DeparaError(f"{name}: expected integer class indices, got {type(y).__name__}") from None
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DeparaError(f"{name}: expected a vector of N class indices, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise DeparaError(f"{name}: has {arr.shape[0]} entries but the features have {n} rows")
    if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)) or np.any(arr < 0):
        raise DeparaError(f"{name}: expected integer class indices 0..C-1 (found a negative, fractional or NaN value)")
    idx = arr.astype(np.int64)
    n_classes = int(idx.max()) + 1 if idx.size else 0
    if require_all:
        present = np.bincount(idx, minlength=n_classes) > 0
        if not present.all():
            missing = int(np.flatnonzero(~present)[0])
            raise DeparaError(f"{name}: expected classes 0..{n_classes - 1} all present, class {missing} has no "
                              "sample (remap with np.unique(labels, return_inverse=True))")
        if n_classes < min_classes:
            raise DeparaError(f"{name}: needs at least {min_classes} classes, got {n_classes}")
    return idx, n_classes


def _one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.zeros((labels.shape[0], n_classes), dtype=np.float64)
    out[np.arange(labels.shape[0]), labels] = 1.0
    return out


def _gram_eigh(f: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Eigen-decomposition of the smaller Gram matrix of ``f`` (N×D).

    Returns (eigenvalues w ≥ 0 descending, eigenvectors, on_features) where ``on_features`` says the
    eigenvectors are D×k right singular vectors (N > D) rather than N×k left singular vectors.
    Eigenvalues below the usual rank tolerance (max(w)·max(N, D)·eps) are dropped: they are round-off.
    """
    n, d = f.shape
    on_features = n > d
    gram = f.T @ f if on_features else f @ f.T
    w, vec = np.linalg.eigh(gram)
    w, vec = w[::-1], vec[:, ::-1]
    tol = max(float(w[0]), 0.0) * max(n, d) * np.finfo(np.float64).eps
    keep = w > tol
    return w[keep], vec[:, keep], on_features


# -------------------------------------------------------------------------------------------------- LogME
def logme(features, labels, regression: bool = False, *, max_iter: int = 11, tol: float = 1e-3) -> float:
    """LogME: the log marginal evidence of a Bayesian linear model from features to targets.

    You, Liu, Wang, Long, *LogME: Practical Assessment of Pre-trained Models for Transfer Learning*, ICML 2021;
    the fast fixed-point solver of You et al., *Ranking and Tuning Pre-trained Models: A New Paradigm for
    Exploiting Model Hubs*, JMLR 2022 (Algorithm 2), as in thuml/LogME ``LogME._fit_fixed_point``.

    Args:
        features: N×D target-sample features of the source model (not centred, as in the reference).
        labels: N class indices 0..C−1 (classification) or, with ``regression=True``, N or N×T real targets.
        regression: treat ``labels`` as real-valued targets, one evidence per target column.
        max_iter, tol: at most ``max_iter`` fixed-point updates, stopping when α/β changes by ≤ ``tol``
            relative. The defaults (11, 1e-3) are the reference's; they can stop short of the maximum evidence
            when N ≲ D (by up to ~1e-2 per sample in our tests); raise ``max_iter`` to converge fully.

    Returns:
        The per-sample evidence log p(y | F, α*, β*) / N averaged over the C one-hot columns (or the T targets).
        Higher = better; typically in about [−2, 2] for unit-scale features.

    Conventions: α, β start at 1 and are updated as in the reference (1e-5 guards both denominators). The evidence needs the D eigenvalues
    of FᵀF; when rank(F) = k < D (always when N < D, also for duplicated columns) the D − k zero eigenvalues
    contribute log α each to log|A|. thuml/LogME drops them, which is its known N < D bug (issue #23, fixed
    by PR #24 by zero-padding σ to length D); here they are kept, so the value equals the paper's formula (and
    the reference's own ``_fit_icml`` route), and equals the unpatched reference whenever F has full column rank.
    """
    if not (isinstance(max_iter, (int, np.integer)) and max_iter >= 1 and tol > 0):
        raise DeparaError(f"max_iter/tol: expected max_iter >= 1 and tol > 0, got {max_iter} and {tol}")
    f = _as_features(features, "features")
    n, d = f.shape
    if regression:
        y = _as_features(labels if np.ndim(labels) != 1 else np.asarray(labels)[:, None], "targets")
        if y.shape[0] != n:
            raise DeparaError(f"targets: has {y.shape[0]} rows but the features have {n}")
    else:
        idx, n_classes = _as_class_indices(labels, "labels", n)
        y = _one_hot(idx, n_classes)

    vec_w, vec, on_features = _gram_eigh(f)
    # x = Uᵀy, the targets in the basis of the left singular vectors (k×T).
    x = (vec.T @ (f.T @ y)) / np.sqrt(vec_w)[:, None] if on_features else vec.T @ y
    rank = vec_w.shape[0]
    sigma = vec_w[:, None]
    x2 = x**2
    res_x2 = (y**2).sum(axis=0) - x2.sum(axis=0)  # part of ‖y‖² outside the column space of F

    n_t = y.shape[1]
    alpha, beta = np.ones(n_t), np.ones(n_t)
    m2_fin, res2_fin = np.zeros(n_t), np.zeros(n_t)
    active = np.ones(n_t, dtype=bool)
    for _ in range(max_iter):
        t = alpha / beta
        gamma = (sigma / (sigma + t)).sum(axis=0)
        m2 = (sigma * x2 / (t + sigma) ** 2).sum(axis=0)
        res2 = (x2 / (1.0 + sigma / t) ** 2).sum(axis=0) + res_x2
        new_alpha = gamma / (m2 + 1e-5)
        new_beta = (n - gamma) / (res2 + 1e-5)
        converged = np.abs(new_alpha / new_beta - t) / t <= tol
        alpha = np.where(active, new_alpha, alpha)
        beta = np.where(active, new_beta, beta)
        m2_fin = np.where(active, m2, m2_fin)
        res2_fin = np.where(active, res2, res2_fin)
        active &= ~converged
        if not active.any():
            break
    log_det_a = np.log(alpha + beta * sigma).sum(axis=0) + (d - rank) * np.log(alpha)
    evidence = (d / 2.0 * np.log(alpha) + n / 2.0 * np.log(beta) - 0.5 * log_det_a
                - beta / 2.0 * res2_fin - alpha / 2.0 * m2_fin - n / 2.0 * np.log(2 * np.pi)) / n
    return float(np.mean(evidence))


# --------------------------------------------------------------------------------------------- LEEP / NCE
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
    p = _as_features(source_probs, "source_probs")
    n = p.shape[0]
    idx, n_classes = _as_class_indices(labels, "labels", n)
    if np.any(p < 0):
        raise DeparaError(f"source_probs: negative probability in row {int(np.argwhere(p < 0)[0, 0])}")
    sums = p.sum(axis=1)
    bad = np.abs(sums - 1.0) > atol
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DeparaError(f"source_probs: row {i} sums to {sums[i]:.6g}, expected 1 (pass softmax probabilities, "
                          "not logits)")
    joint = _one_hot(idx, n_classes).T @ p / n  # C×Cs, P̂(y, z)
    p_z = joint.sum(axis=0)
    cond = np.divide(joint, p_z, out=np.zeros_like(joint), where=p_z > 0)  # P̂(y | z)
    eep = np.einsum("iz,iz->i", p, cond[idx])
    return float(np.mean(np.log(eep)))


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
    z, _ = _as_class_indices(source_labels, "source_labels", None, require_all=False)
    idx, n_classes = _as_class_indices(labels, "labels", z.shape[0])
    n = z.shape[0]
    n_source = int(z.max()) + 1
    joint = np.bincount(idx * n_source + z, minlength=n_classes * n_source).reshape(n_classes, n_source) / n
    p_z = joint.sum(axis=0)
    cond = np.divide(joint, p_z, out=np.zeros_like(joint), where=p_z > 0)
    return float(np.sum(xlogy(joint, cond)))


# --------------------------------------------------------------------------------------- H-score / TransRate
def h_score(features, labels) -> float:
    """H-score: tr(cov(f)⁻¹ cov(E[f | y])).

    Bao, Li, Huang, Wang, Zhong, Ma, *An Information-Theoretic Approach to Transferability in Task Transfer
    Learning*, ICIP 2019.

    Args:
        features: N×D features of the source model on the target samples.
        labels: N target class indices 0..C−1, every class present.

    Returns:
        The H-score, in [0, C − 1]; higher = better. Both covariances use the same 1/(N−1) normalisation
        (np.cov), so the normalisation cancels; the class-mean matrix is centred by the overall mean.

    The inverse is the pseudo-inverse on the numerical range of the centred features: with U an orthonormal
    basis of that range, H = Σ_c ‖Σ_{i∈c} u_i‖² / n_c. On a non-singular covariance this equals
    ``tllib.ranking.h_score``; the reference's ``pinv(rcond=1e-15)`` instead keeps round-off eigenvalues of a
    singular covariance (N ≤ D, collinear features), whose huge inverses make its value arbitrary. Here they
    are dropped (rank tolerance max·max(N, D)·eps), the Moore–Penrose inverse the paper's formula calls for;
    then when N − 1 ≤ rank every labelling is linearly separable and H reaches its maximum C − 1.
    """
    f = _as_features(features, "features")
    idx, n_classes = _as_class_indices(labels, "labels", f.shape[0])
    centred = f - f.mean(axis=0, keepdims=True)
    w, vec, on_features = _gram_eigh(centred)
    counts = np.bincount(idx, minlength=n_classes).astype(np.float64)
    one_hot = _one_hot(idx, n_classes)
    # Σ_{i∈c} u_i for each class c, without forming the N×k basis U = F V Λ^{-1/2} when N > D.
    class_sums = (one_hot.T @ centred) @ vec / np.sqrt(w) if on_features else one_hot.T @ vec
    return float(np.sum((class_sums**2).sum(axis=1) / counts))


def _coding_rate(z: np.ndarray, eps: float) -> float:
    """½ log det(I_d + ZᵀZ / (n ε)), via the smaller of the two Gram matrices (Sylvester's identity)."""
    n, d = z.shape
    gram = z.T @ z if n >= d else z @ z.T
    mat = np.eye(gram.shape[0]) + gram / (n * eps)
    chol = np.linalg.cholesky(mat)
    return float(np.sum(np.log(np.diag(chol))))  # ½ · 2 Σ log diag(L)


def transrate(features, labels, eps: float = 1e-4) -> float:
    """TransRate: mutual information between features and labels, measured by coding rates.

    Huang, Huang, Rong, Yang, Wei, *Frustratingly Easy Transferability Estimation*, ICML 2022.

    Args:
        features: N×D features (centred here by their overall mean; not scaled, so the value depends on the
            feature scale through the distortion ``eps``).
        labels: N target class indices 0..C−1, every class present.
        eps: the distortion ε of the coding rate R(Z, ε) = ½ log det(I + ZᵀZ / (n ε)).

    Returns:
        TrR = R(Z, ε) − (1/C) Σ_c R(Z_c, ε) in nats; higher = better. Z is centred once over all samples; the
        class blocks Z_c are not re-centred, and the class rates are averaged with equal weight 1/C, as in the
        authors' code printed in the paper's appendix and in ``tllib.ranking.transrate`` (both agree).
    """
    if not (np.isfinite(eps) and eps > 0):
        raise DeparaError(f"eps: expected a positive distortion, got {eps}")
    f = _as_features(features, "features")
    idx, n_classes = _as_class_indices(labels, "labels", f.shape[0])
    z = f - f.mean(axis=0, keepdims=True)
    class_rates = [_coding_rate(z[idx == c], eps) for c in range(n_classes)]
    return float(_coding_rate(z, eps) - sum(class_rates) / n_classes)


# ----------------------------------------------------------------------------------------------- RSA / CKA
def _pair_shapes(features_a, features_b) -> tuple[np.ndarray, np.ndarray]:
    a = _as_features(features_a, "features_a", min_rows=3)
    b = _as_features(features_b, "features_b", min_rows=3)
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


# --- recent estimators (b): PACTran-Gaussian, ETran, NCTI, PED
# Four estimators published in 2022–2023, each checked against its authors' code by
# benchmarks/reference/run_references_b.py (expected values in tests/data/estimator_references_b.json).
# ETran and NCTI are defined by their authors over a *set* of candidate models (each term is min–max scaled
# across the candidates before the terms are added); the per-pair functions return the unscaled sum and
# ``etran_combine`` / ``ncti_combine`` reproduce the candidate-set score. Private helpers carry a ``_b_`` prefix.
import scipy.optimize as _b_optimize  # noqa: E402  (kept inside this section: it is self-contained)
from scipy.spatial.distance import cdist as _b_cdist  # noqa: E402
from scipy.special import logsumexp as _b_logsumexp, softmax as _b_softmax  # noqa: E402


def _b_positive(value, name: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise DeparaError(f"{name}: expected a positive number, got {value!r}") from None
    if not (np.isfinite(out) and out > 0):
        raise DeparaError(f"{name}: expected a positive number, got {value!r}")
    return out


def _b_count(value, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DeparaError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def _b_minmax(values, name: str) -> np.ndarray:
    """Min–max scale a vector over candidates to [0, 1], as the ETran/NCTI references do (constant → 0)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size < 1 or not np.all(np.isfinite(v)):
        raise DeparaError(f"{name}: expected a non-empty finite vector of one value per candidate, got shape "
                          f"{v.shape}")
    span = v.max() - v.min()
    # The references divide by the span unguarded (NaN for a constant term); a constant term carries no
    # ranking information, so it is scored 0 for every candidate here.
    return (v - v.min()) / span if span > 0 else np.zeros_like(v)


# ---------------------------------------------------------------------------------------- PACTran-Gaussian
def pactran_gaussian(features, labels, *, lda_factor: float = 1.0, s2_factor: float | None = None,
                     max_iter: int = 100, tol: float = 1e-6, seed: int | None = 0) -> float:
    """PACTran-Gaussian: a PAC-Bayesian bound on the target risk of a linear softmax head on the features.

    Ding, Chen, Levinboim, Goodman, Soricut, *PACTran: PAC-Bayesian Metrics for Estimating the Transferability
    of Pretrained Models to Classification Tasks*, ECCV 2022; ``calculate_pac_gauss`` of
    google-research/pactran_metrics (``compute_metrics.py``), the "PAC_Gauss with diagonal variance" metric.

    With F̃ the column-centred N×D features, Y the N×C one-hot labels, θ = (W ∈ R^{D×C}, b ∈ R^C) and
    λN = ``lda_factor``·N, the MAP head minimises

        L(θ) = (1/N) Σ_i −log softmax(f̃_i W + b)_{y_i} + ‖W‖²_F / (2 λN)

    by L-BFGS-B (at most ``max_iter`` iterations, tolerance ``tol``, start W ~ N(0, 0.03²) from
    ``np.random.RandomState(seed)``, b = 0). With p = softmax at θ*, the summed diagonal Hessian is
    H = Σ_i ‖f̃_i‖² Σ_c p_ic(1 − p_ic) + DC/(λN) + Σ_ic p_ic(1 − p_ic), σ⁻² = H·λN/(DC) + 1e-10, and

        PAC_Gauss = L(θ*) + (DC / (2 λN)) · (s2_factor / D) · log σ⁻²,

    a bound (lower = better). **Returned: −PAC_Gauss, so higher = more transferable**, as the ETran authors
    use it (``-pg[0][1]`` in mgholamikn/ETran ``evaluate_metric.py``).

    Parameters
    ----------
    features : array_like, shape (N, D)
        Target-sample features of the source model (centred here; the caller's array is not modified,
        unlike the reference, which subtracts the mean in place).
    labels : array_like, shape (N,)
        Class indices 0..C−1, every class present, C ≥ 2.
    lda_factor : float
        λ, the prior precision scale (the reference's ``lda_factor``; the ETran authors use 1).
    s2_factor : float, optional
        Prior variance factor, s² = ``s2_factor``/D. None → 100·``lda_factor``, the first (reported) of the
        two values the reference computes for λ ∈ {10, 1, 0.1}; any positive λ and s2 are accepted here (the
        reference raises NameError for other λ).
    max_iter : int
        L-BFGS-B iteration cap (reference: 100).
    tol : float
        L-BFGS-B tolerance (reference: 1e-6). At 1e-6 the optimiser stops on the relative decrease of L before
        the optimum, so the value depends on the start point (on the reference's own code, over seeds 0–4, by
        up to 3.5e-4 relative on a 300×24, 5-class input; see the JSON); ``tol=1e-12`` reaches the optimum
        (equal to scikit-learn's ``LogisticRegression(C=lda_factor)`` head to 1e-6 in the tests).
    seed : int or None
        Seed of the legacy NumPy stream that draws the start point; seed s reproduces the reference run after
        ``np.random.seed(s)`` (its ``main`` seeds 0). When the optimiser converges the value does not depend
        on it (see ``tol``).

    Returns
    -------
    float
        −PAC_Gauss (nats per sample plus the complexity term); higher = more transferable.

    Notes
    -----
    Cost O(I·N·D·C) for I ≤ ``max_iter`` L-BFGS iterations, memory O(N·(D + C) + D·C). The cross-entropy is
    computed without the reference's ``label·log(label + 1e-10)`` term, a constant 1e-10 per sample.
    """
    lam = _b_positive(lda_factor, "lda_factor")
    s2f = 100.0 * lam if s2_factor is None else _b_positive(s2_factor, "s2_factor")
    max_iter = _b_count(max_iter, "max_iter")
    tol = _b_positive(tol, "tol")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise DeparaError(f"seed: expected a non-negative integer or None, got {seed!r}")
    f = _as_features(features, "features")
    idx, n_classes = _as_class_indices(labels, "labels", f.shape[0])
    x = f - f.mean(axis=0, keepdims=True)
    n, d = x.shape
    one_hot = _one_hot(idx, n_classes)
    ldas2 = lam * n
    rows = np.arange(n)

    def logits_of(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = theta.reshape(d + 1, n_classes)
        return x @ t[:d] + t[d:], t[:d]

    def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        logits, w = logits_of(theta)
        log_q = logits - _b_logsumexp(logits, axis=1, keepdims=True)
        loss = -log_q[rows, idx].sum() / n + 0.5 * np.sum(w * w) / ldas2
        grad_f = (np.exp(log_q) - one_hot) / n
        grad = np.concatenate([x.T @ grad_f + w / ldas2, grad_f.sum(axis=0, keepdims=True)], axis=0)
        return float(loss), grad.ravel()

    rng = np.random.RandomState(seed)  # the legacy stream: same draws as np.random.seed(seed); np.random.normal
    theta0 = np.concatenate([rng.normal(size=(d, n_classes)) * 0.03, np.zeros((1, n_classes))], axis=0).ravel()
    theta = _b_optimize.minimize(loss_and_grad, theta0, method="L-BFGS-B", jac=True,
                                 options=dict(maxiter=max_iter), tol=tol).x
    pac_opt, _ = loss_and_grad(theta)
    prob = _b_softmax(logits_of(theta)[0], axis=1)
    h_f = prob - prob**2
    # Σ_{d,c} (x²)ᵀ h_f = Σ_i ‖x_i‖² Σ_c h_ic, without forming the D×C matrix.
    h_sum = np.sum((x**2).sum(axis=1) * h_f.sum(axis=1)) + d * n_classes / ldas2 + h_f.sum()
    kd = d * n_classes
    sigma2_inv = h_sum * ldas2 / kd + 1e-10
    pac_gauss = pac_opt + 0.5 * kd / ldas2 * (s2f / d) * np.log(sigma2_inv)
    return float(-pac_gauss)


# --------------------------------------------------------------------------------------------------- ETran
def _b_energy_score(f: np.ndarray, energy_percent: float) -> float:
    """Mean of the lowest log-sum-exp energies (the reference's ``Energy_Score(f, percent, 'bot')``)."""
    energy = _b_logsumexp(f, axis=1)
    n = energy.shape[0]
    # The reference keeps int(percent·10)·N // 1000 samples (percent in steps of 0.1 %) and averages an empty
    # set (NaN) when that is 0, i.e. for N < 200 at 0.5 %; at least one sample is kept here.
    k = max(1, int(round(energy_percent * 10)) * n // 1000)
    return float(np.partition(energy, k - 1)[:k].mean())


def _b_lda_score(f: np.ndarray, idx: np.ndarray, n_classes: int, whiten: bool) -> float:
    """Mean posterior of the true class under the ETran reference's LDA classifier (see :func:`etran`)."""
    n, d = f.shape
    counts = np.bincount(idx, minlength=n_classes).astype(np.float64)
    priors = counts / n
    means = (_one_hot(idx, n_classes).T @ f) / counts[:, None]  # C×D
    if whiten:
        resid = f - means[idx]
        sw = resid.T @ resid / n  # Σ_c π_c cov_c (biased), the reference's within-class scatter
        top = _power_top_eigenvalue(sw)
        shrink = max(np.exp(-5.0 * top), 1e-10)
        sw_shrunk = (1.0 - shrink) * sw
        sw_shrunk.flat[:: d + 1] += shrink * np.trace(sw) / d
        coef = np.linalg.solve(sw_shrunk, means.T).T  # Σ⁻¹μ_c, C×D
    else:
        coef = means
    logits = f @ coef.T - 0.5 * np.einsum("cd,cd->c", means, coef) + np.log(priors)
    prob = _b_softmax(logits, axis=1)
    return float(np.mean(prob[np.arange(n), idx]))


def etran_components(features, labels, *, energy_percent: float = 0.5, whiten: bool = False) -> dict[str, float]:
    """The two terms of ETran for classification: energy S_en and LDA classification score S_lda.

    See :func:`etran`. Returns ``{"energy": S_en, "lda": S_lda}``; both are higher = more transferable.
    """
    pct = _b_positive(energy_percent, "energy_percent")
    if pct > 100:
        raise DeparaError(f"energy_percent: expected a percentage in (0, 100], got {energy_percent!r}")
    f = _as_features(features, "features")
    idx, n_classes = _as_class_indices(labels, "labels", f.shape[0])
    return {"energy": _b_energy_score(f, pct), "lda": _b_lda_score(f, idx, n_classes, bool(whiten))}


def etran(features, labels, *, energy_percent: float = 0.5, whiten: bool = False) -> float:
    """ETran: energy-based transferability, S_en + S_lda (classification).

    Gholami, Akbari, Wang, Kamranian, Zhang, *ETran: Energy-Based Transferability Estimation*, ICCV 2023;
    ``Energy_Score`` and ``LDA_Score`` of mgholamikn/ETran ``metrics.py``, combined in ``tw.py``.

    * Energy score: E_i = log Σ_d exp(f_id) (the log-sum-exp of the sample's features, read as logits: the
      negative free energy, large = in-distribution for the source model); S_en = the mean of E_i over the
      lowest ``energy_percent`` % of samples (0.5 % in the reference).
    * LDA score: S_lda = (1/N) Σ_i p(y_i | f_i) with p(c | f) = softmax_c(f·a_c − ½ μ_c·a_c + log π_c), μ_c the
      class means, π_c the class frequencies and a_c = μ_c (``whiten=False``, the reference) or
      a_c = Σ_w⁻¹ μ_c (``whiten=True``, Fisher's LDA as described in the paper).

    Parameters
    ----------
    features : array_like, shape (N, D)
        Target-sample features of the source model (penultimate layer in the reference).
    labels : array_like, shape (N,)
        Class indices 0..C−1, every class present, C ≥ 2.
    energy_percent : float
        Percentage of lowest-energy samples averaged (rounded to 0.1 %; at least one sample is used).
    whiten : bool
        False reproduces the reference. Its ``LDA._solve_eigen`` passes the non-symmetric matrix Σ_w⁻¹S_b to
        the symmetric solver ``np.linalg.eigh``, which reads one triangle and returns an orthonormal basis V of
        all D directions, so ``coef_ = μ V Vᵀ = μ``: the projection and the shrunk within-class covariance
        cancel, leaving the identity-covariance classifier above. True uses Σ_w⁻¹ with the reference's own
        shrinkage (s = max(e^{−5 λ̂}, 1e-10), λ̂ its 3-step power estimate of the top eigenvalue of Σ_w), the
        classifier the paper intends (equal to scikit-learn's ``LinearDiscriminantAnalysis(solver="lsqr",
        shrinkage=s)``). It costs O(N·D² + D³).

    Returns
    -------
    float
        S_en + S_lda; higher = more transferable. S_lda is in (0, 1]; S_en has the scale of the features.

    Notes
    -----
    The authors do not add the raw terms: ``tw.py`` min–max scales each term over the candidate models of one
    target and scores 0.15·S_en + 0.85·S_lda, so a model's score depends on the other candidates. That set-level
    score is :func:`etran_combine` applied to :func:`etran_components` of every candidate; this per-pair value
    is the unscaled sum of the two terms (the paper's overall score combines S_en, S_cls and, for detection
    only, a regression score S_reg).
    Cost O(N·D·C) (``whiten=False``), memory O(N·C + C·D).
    """
    parts = etran_components(features, labels, energy_percent=energy_percent, whiten=whiten)
    return float(parts["energy"] + parts["lda"])


def etran_combine(energy, lda, *, energy_weight: float = 0.15) -> np.ndarray:
    """ETran's candidate-set score: w·minmax(S_en) + (1 − w)·minmax(S_lda) over the candidate models.

    Parameters
    ----------
    energy, lda : array_like, shape (M,)
        S_en and S_lda of M candidate models on one target (from :func:`etran_components`).
    energy_weight : float
        w in [0, 1]; 0.15 in mgholamikn/ETran ``tw.py``.

    Returns
    -------
    numpy.ndarray, shape (M,)
        One score per candidate in [0, 1]; higher = more transferable. A term that is constant over the
        candidates is scored 0 (the reference divides by zero there).
    """
    if not (isinstance(energy_weight, (int, float, np.floating)) and 0.0 <= float(energy_weight) <= 1.0):
        raise DeparaError(f"energy_weight: expected a weight in [0, 1], got {energy_weight!r}")
    e, l_ = _b_minmax(energy, "energy"), _b_minmax(lda, "lda")
    if e.shape != l_.shape:
        raise DeparaError(f"lda: has {l_.shape[0]} candidates but energy has {e.shape[0]}")
    return float(energy_weight) * e + (1.0 - float(energy_weight)) * l_


# ---------------------------------------------------------------------------------------------------- NCTI
def _b_pca(f: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact PCA: (N×k scores, all explained variances with ddof 1, descending) via the smaller Gram matrix."""
    x = f - f.mean(axis=0, keepdims=True)
    w, vec, on_features = _gram_eigh(x)
    k = min(k, w.shape[0])
    scores = x @ vec[:, :k] if on_features else vec[:, :k] * np.sqrt(w[:k])
    return scores, w / (f.shape[0] - 1)


def ncti_components(features, labels, *, n_components: int = 64) -> dict[str, float]:
    """The three terms of NCTI: ``seli``, ``ncc`` and ``vc`` (see :func:`ncti`)."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    n_components = _b_count(n_components, "n_components", minimum=2)
    f = _as_features(features, "features")
    idx, n_classes = _as_class_indices(labels, "labels", f.shape[0])
    n = f.shape[0]
    if n <= n_classes:
        raise DeparaError(f"labels: NCTI's LDA needs more samples than classes, got N={n} and C={n_classes}")
    z, explained = _b_pca(f, n_components)
    shrink = max(np.exp(-explained[: n_components // 2].sum()), 1e-10)
    # The reference picks the solver by comparing the clipped value with 1e-10 exactly; kept as is.
    clf = (LinearDiscriminantAnalysis(solver="svd") if shrink == 1e-10
           else LinearDiscriminantAnalysis(solver="eigen", shrinkage=float(shrink)))
    low = clf.fit_transform(z, idx)
    low = low - low.mean(axis=0, keepdims=True)
    seli = float(np.linalg.svd(low, compute_uv=False).sum())
    prob = clf.predict_proba(z)
    ncc = float(np.mean(prob[np.arange(n), idx]))
    order = np.argsort(idx, kind="stable")
    bounds = np.cumsum(np.bincount(idx, minlength=n_classes))[:-1]
    # One small SVD per class (n_c × C), not per sample.
    class_nuc = sum(float(np.linalg.svd(block, compute_uv=False).sum()) for block in np.split(prob[order], bounds))
    return {"seli": seli, "ncc": ncc, "vc": float(np.log(class_nuc))}


def ncti(features, labels, *, n_components: int = 64) -> float:
    """NCTI: how far the features are from neural collapse on the target, seli + ncc − vc.

    Wang, Luo, Zheng, Huang, Baktashmotlagh, *How Far Pre-trained Models Are from Neural Collapse on the Target
    Dataset Informs their Transferability*, ICCV 2023; ``NCTI_Score`` of BUserName/NCTI ``metrics.py`` with the
    combination in ``evaluate_metric_group1_cpu.py``.

    Z = the first ``n_components`` principal-component scores of the features; s = max(exp(−Σ_{k≤K/2} λ_k),
    1e-10) from the PCA variances λ_k; an LDA is fitted on (Z, y): scikit-learn's ``solver="svd"`` when
    s = 1e-10, else ``solver="eigen", shrinkage=s``. With L the centred N×min(C−1, K) LDA projection and P the
    N×C LDA posteriors:

    * seli = ‖L‖_* (nuclear norm: the spread of the projected features, "singularity"; higher = better),
    * ncc = (1/N) Σ_i P_{i, y_i} (nearest-centre classifier accuracy in probability; higher = better),
    * vc = log Σ_c ‖P_c‖_* over the rows P_c of class c (within-class variability; lower = better).

    Parameters
    ----------
    features : array_like, shape (N, D)
        Target-sample features of the source model.
    labels : array_like, shape (N,)
        Class indices 0..C−1, every class present, C ≥ 2, N > C.
    n_components : int
        PCA dimension K (reference: 64, with K/2 = 32 variances for the shrinkage). Clipped to the rank of the
        centred features (the reference raises when min(N, D) < 64).

    Returns
    -------
    float
        seli + ncc − vc; higher = more transferable.

    Notes
    -----
    The authors score a *set* of candidates: each term is min–max scaled over the candidate models and the score
    is ncc + seli − vc of the scaled terms (:func:`ncti_combine` on :func:`ncti_components` of every
    candidate); this per-pair value is the unscaled sum, dominated by seli, which grows with N and the feature
    scale. The PCA here is exact; the reference's scikit-learn ``PCA(64)`` (scikit-learn 1.9) switches to its
    randomized solver, seeded by the global NumPy state, when max(N, D) > 500, 64 < 0.8·min(N, D) and not
    (D ≤ 1000 and N ≥ 10·D): at N = 800, D = 128 its seli varies by 2.3e-3 relative over seeds (the JSON
    records the runs).
    Cost O(N·D·min(N, D) + min(N, D)³) for the PCA, O(N·K² + N·C²) after it; memory O(N·D).
    """
    parts = ncti_components(features, labels, n_components=n_components)
    return float(parts["seli"] + parts["ncc"] - parts["vc"])


def ncti_combine(seli, ncc, vc) -> np.ndarray:
    """NCTI's candidate-set score: minmax(ncc) + minmax(seli) − minmax(vc) over the candidate models.

    Parameters
    ----------
    seli, ncc, vc : array_like, shape (M,)
        The terms of M candidate models on one target (from :func:`ncti_components`).

    Returns
    -------
    numpy.ndarray, shape (M,)
        One score per candidate in [−1, 2]; higher = more transferable (as in BUserName/NCTI
        ``evaluate_metric_group1_cpu.py``; a term constant over the candidates is scored 0).
    """
    s, c, v = _b_minmax(seli, "seli"), _b_minmax(ncc, "ncc"), _b_minmax(vc, "vc")
    if not (s.shape == c.shape == v.shape):
        raise DeparaError(f"ncc/vc: expected one value per candidate like seli ({s.shape[0]}), got {c.shape[0]} "
                          f"and {v.shape[0]}")
    return c + s - v


# ----------------------------------------------------------------------------------------------------- PED
def _b_ped_step(x: np.ndarray, idx: np.ndarray, one_hot: np.ndarray, counts: np.ndarray, centre: np.ndarray,
                scale: np.ndarray, time_step: float, nsigma: float, constant: float) -> tuple[np.ndarray, float]:
    """One step of potential-energy descent (the reference's ``One_Step_PED``); returns (moved x, Σ|shift|)."""
    z = (x - centre) / scale
    means = one_hot.T @ z / counts[:, None]  # C×D
    resid = z - means[idx]
    radius = np.sqrt((one_hot.T @ resid**2).sum(axis=1) / counts)  # √(Σ_d var_cd), ddof 0
    dist = _b_cdist(means, means)
    overlap = np.maximum(nsigma * (radius[:, None] + radius[None, :]) - dist, 0.0)
    np.fill_diagonal(overlap, 0.0)
    move = np.minimum(0.5 * time_step**2 * constant * overlap, overlap)
    # Class a moves by Σ_b move_ab (μ_a − μ_b)/d_ab, away from every class it overlaps. Coincident means have no
    # direction: no move (the reference divides by zero and returns NaN features).
    weight = np.divide(move, dist, out=np.zeros_like(move), where=dist > 0)
    shift = weight.sum(axis=1)[:, None] * means - weight @ means
    return (z + shift[idx]) * scale + centre, float(np.abs(shift).sum())


def ped_features(features, labels, *, general_features=None, time_step: float = 0.1, nsigma: float = 0.6,
                 constant: float = 1.0, exit_ratio: float = 0.5, max_steps: int = 6,
                 eps: float = 1e-3) -> tuple[np.ndarray, int]:
    """The features after PED's potential-energy descent, and the number of steps taken (see :func:`ped`).

    Returns
    -------
    (numpy.ndarray of shape (N, D), int)
        Moved float64 features (a new array) and the number of accepted steps.
    """
    time_step = _b_positive(time_step, "time_step")
    nsigma = _b_positive(nsigma, "nsigma")
    constant = _b_positive(constant, "constant")
    exit_ratio = _b_positive(exit_ratio, "exit_ratio")
    eps = _b_positive(eps, "eps")
    max_steps = _b_count(max_steps, "max_steps", minimum=0)
    x = _as_features(features, "features")
    idx, n_classes = _as_class_indices(labels, "labels", x.shape[0])
    ref = x if general_features is None else _as_features(general_features, "general_features")
    if ref.shape[1] != x.shape[1]:
        raise DeparaError(f"general_features: has {ref.shape[1]} columns but the features have {x.shape[1]}")
    centre = ref.mean(axis=0)
    scale = np.maximum(ref.std(axis=0), eps)
    one_hot = _one_hot(idx, n_classes)
    counts = np.bincount(idx, minlength=n_classes).astype(np.float64)
    first = None
    steps = 0
    while steps < max_steps:
        moved, change = _b_ped_step(x, idx, one_hot, counts, centre, scale, time_step, nsigma, constant)
        if first is None:
            first = change
        # Stop once a step moves less than exit_ratio of the first; no motion at all (first = 0) stops at once
        # (the reference computes 0/0 = NaN there, which also stops it).
        if first == 0 or not change / first > exit_ratio:
            break
        x = moved
        steps += 1
    return x.copy() if steps == 0 else x, steps


def ped(features, labels, *, estimator=None, general_features=None, time_step: float = 0.1, nsigma: float = 0.6,
        constant: float = 1.0, exit_ratio: float = 0.5, max_steps: int = 6, eps: float = 1e-3) -> float:
    """PED: score the features after simulating the fine-tuning dynamics as potential-energy descent.

    Li, Hu, Ge, Shan, Duan, *Exploring Model Transferability through the Lens of Potential Energy*, ICCV 2023;
    ``PED_Score`` / ``One_Step_PED`` of lixiaotong97/PED ``metrics.py`` with the defaults of its
    ``evaluate_metric_cpu.py`` (time step 0.1, nsigma 0.6, exit ratio 0.5, constant 1, at most 6 steps).

    Each class c is a ball centred at its mean μ_c with radius R_c = √(Σ_d Var(z_d | c)) in features z
    standardised by a reference distribution's mean/std (std floored at ``eps``). Two classes repel with force
    F_ab = max(nsigma·(R_a + R_b) − ‖μ_a − μ_b‖, 0); in one step every sample of class a moves by
    Σ_b min(½·t²·k·F_ab, F_ab)·(μ_a − μ_b)/‖μ_a − μ_b‖ (t = ``time_step``, k = ``constant``). Steps repeat while the
    total displacement Σ|shift| exceeds ``exit_ratio`` times the first step's; the moved features (mapped back
    to the original scale) are scored by ``estimator``.

    Parameters
    ----------
    features : array_like, shape (N, D)
        Target-sample features of the source model.
    labels : array_like, shape (N,)
        Class indices 0..C−1, every class present, C ≥ 2.
    estimator : callable, optional
        ``estimator(moved_features, labels) -> float``, higher = better; default :func:`logme`. The paper
        plugs PED into LogME, SFDA and NLEEP; the reference script's default is SFDA.
    general_features : array_like, shape (M, D), optional
        Features of the same source model on a general dataset, whose mean/std standardise the dynamics (the
        reference uses ImageNet-val features and raises without them). None → the target features' own
        mean/std (a documented substitute; the value then needs no second dataset).
    time_step, nsigma, constant, exit_ratio, max_steps, eps : float / int
        The dynamics' parameters, as above.

    Returns
    -------
    float
        ``estimator`` on the moved features; higher = more transferable.

    Notes
    -----
    One step costs O(N·D + C²·D) time and O(N·D + C²) memory (the reference builds a C×C×D force tensor);
    at most ``max_steps`` steps, plus the inner estimator's cost.
    """
    moved, _ = ped_features(features, labels, general_features=general_features, time_step=time_step,
                            nsigma=nsigma, constant=constant, exit_ratio=exit_ratio, max_steps=max_steps, eps=eps)
    fn = logme if estimator is None else estimator
    if not callable(fn):
        raise DeparaError(f"estimator: expected a callable estimator(features, labels) -> float, got {fn!r}")
    return float(fn(moved, labels))


__all__ += ["pactran_gaussian", "etran", "etran_components", "etran_combine", "ncti", "ncti_components",
            "ncti_combine", "ped", "ped_features"]


# =================================================================================== Recent estimators (A)
# SFDA (ECCV 2022), NLEEP (CVPR 2021), PARC (NeurIPS 2021), GBC (CVPR 2022). Each is checked against its
# authors' code by benchmarks/reference/run_references_a.py (expected values in
# tests/data/estimator_references_a.json, tests in tests/test_baselines_recent_a.py).

def _softmax_rows(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def _power_top_eigenvalue(a: np.ndarray, iterations: int = 3) -> float:
    """The largest eigenvalue of symmetric PSD ``a`` by the short power iteration SFDA specifies.

    Starts from the row sums and runs ``iterations`` double steps, returning xᵀ A y for the last two iterates,
    exactly the estimate SFDA's adaptive shrinkage is defined with (so the shrinkage, hence the score, matches).
    """
    x = a.sum(axis=1)
    y = x
    for _ in range(iterations):
        t = a @ x
        y = t / np.linalg.norm(t)
        t = a @ y
        x = t / np.linalg.norm(t)
    return float(x @ a @ y)


def _shrunk_lda_proba(x: np.ndarray, idx: np.ndarray, n_classes: int, priors: np.ndarray,
                      shrinkage: float | None) -> tuple[np.ndarray, float]:
    """Class posteriors (N×C) of LDA with a shrunk pooled within-class covariance; returns (proba, shrinkage).

    Sw = Σ_c π_c cov_c (biased, 1/n_c), shrunk as (1 − s) Sw + s (tr Sw / D) I. With ``shrinkage=None`` the
    strength is s = max(exp(−5 λ̂_max(Sw)), 1e-10), λ̂_max from three power-iteration steps (SFDA, Eq. 5).
    The linear discriminant is μ_c ᵀ Sw⁻¹ x − ½ μ_cᵀ Sw⁻¹ μ_c + log π_c. The reference forms Sw⁻¹ as V Vᵀ from
    the full generalised eigenvectors of (Sb, Sw) (V ᵀ Sw V = I implies V Vᵀ = Sw⁻¹); a Cholesky solve gives
    the same matrix for O(D³/3) instead of a generalised eigenproblem.
    """
    n, d = x.shape
    counts = np.bincount(idx, minlength=n_classes).astype(np.float64)
    means = (_one_hot(idx, n_classes).T @ x) / counts[:, None]
    centred = x - means[idx]
    sw = centred.T @ centred / n  # = Σ_c (n_c / n) · cov_c with the biased 1/n_c covariance
    trace = float(np.trace(sw))
    if not trace > 0:
        raise DeparaError("features: the within-class scatter is zero (every class is a single repeated point), "
                          "SFDA is undefined")
    if shrinkage is None:
        shrinkage = max(float(np.exp(-5.0 * _power_top_eigenvalue(sw))), 1e-10)
    shrunk = (1.0 - shrinkage) * sw
    shrunk.flat[:: d + 1] += shrinkage * trace / d
    try:
        coef = scipy.linalg.solve(shrunk, means.T, assume_a="pos").T  # C×D, μ_c ᵀ Sw⁻¹
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
        raise DeparaError("features: the shrunk within-class covariance is not positive definite") from None
    intercept = -0.5 * np.einsum("cd,cd->c", means, coef) + np.log(priors)
    return _softmax_rows(x @ coef.T + intercept), shrinkage


def sfda(features, labels) -> float:
    """SFDA: self-challenging Fisher discriminant analysis.

    Shao, Zhao, Ge, Xiao, Luo, *Not All Models Are Equal: Predicting Model Transferability in a Self-challenging
    Fisher Space*, ECCV 2022; equal to ``SFDA_Score`` of the authors' code (TencentARC/SFDA, ``metrics.py``).

    Args:
        features: N×D features of the source model on the target samples (not centred or scaled).
        labels: N target class indices 0..C−1, every class present (C ≥ 2).

    Returns:
        The mean probability of the true class, (1/N) Σ_i p₂(y_i | x̃_i) ∈ (0, 1]; higher = better. Steps:

        1. p₁ = softmax(shrunk-LDA logits of F), the regularised Fisher discriminant with adaptive shrinkage
           s = max(exp(−5 λ_max(Sw)), 1e-10) (see ``_shrunk_lda_proba``);
        2. the authors soften it once more, q = softmax(p₁) (a softmax of probabilities, as in their code);
        3. ConfMix: x̃_i = q_{i,y_i} x_i + (1 − q_{i,y_i}) μ̄_{y_i}, with μ̄_c the mean of the other classes'
           means, so that uncertain samples are pulled towards the other classes (the "self-challenge");
        4. p₂ = shrunk-LDA posteriors of F̃ with the same s; the score is their mean on the true class (the
           authors leave out the log "in case of instability"; so does this function).

    Cost: O(N D² + D³ + N C D) time, O(D² + N D) memory (twice). The reference's Sb and its generalised
    eigen-decomposition do not affect the value (its posteriors use V Vᵀ = Sw⁻¹ only); they are not computed.
    Unlike the reference, the caller's ``features`` are not modified (the reference mixes them in place).
    """
    f = _as_features(features, "features")
    idx, n_classes = _as_class_indices(labels, "labels", f.shape[0])
    n = f.shape[0]
    priors = np.bincount(idx, minlength=n_classes) / float(n)
    proba, shrinkage = _shrunk_lda_proba(f, idx, n_classes, priors, None)
    soft = _softmax_rows(proba)
    class_means = (_one_hot(idx, n_classes).T @ f) / (priors * n)[:, None]
    others = (class_means.sum(axis=0, keepdims=True) - class_means) / (n_classes - 1)
    conf = soft[np.arange(n), idx][:, None]
    mixed = conf * f + (1.0 - conf) * others[idx]
    proba2, _ = _shrunk_lda_proba(mixed, idx, n_classes, priors, shrinkage)
    return float(np.mean(proba2[np.arange(n), idx]))


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

    f = _as_features(features, "features")
    idx, n_classes = _as_class_indices(labels, "labels", f.shape[0])
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
    joint = _one_hot(idx, n_classes).T @ gamma / n  # C×K, P̂(y, k)
    p_k = joint.sum(axis=0)
    cond = np.divide(joint, p_k, out=np.zeros_like(joint), where=p_k > 0)  # P̂(y | k); empty k has no term
    eep = np.einsum("ik,ik->i", gamma, cond[idx])
    return float(np.mean(np.log(eep)) if log else np.mean(eep))


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

    f = _as_features(features, "features", min_rows=3)
    idx, n_classes = _as_class_indices(labels, "labels", f.shape[0])
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
        rho = _pearson(ranks, rankdata((1.0 - np.corrcoef(_one_hot(idx, n_classes)))[upper]))
    else:
        # Ranks of a two-valued variable are an increasing affine map of it: Pearson with the indicator is ρ.
        rho = _pearson_indicator(ranks, (idx[:, None] != idx[None, :])[upper])
    return float(100.0 * rho)


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


def _pairwise_class_blocks(n_classes: int, d: int, budget: int = 1 << 22):
    """Row blocks of the C×C class pairs so that one block of differences holds ≤ ``budget`` floats."""
    step = max(1, budget // max(1, n_classes * d))
    return [slice(s, min(s + step, n_classes)) for s in range(0, n_classes, step)]


def gbc(features, labels, *, gaussian_type: str = "spherical", min_variance: float = 1e-4,
        reference_spherical: bool = False) -> float:
    """GBC: Gaussian Bhattacharyya coefficient, minus the total overlap of the per-class Gaussians.

    Pándy, Agostinelli, Uijlings, Ferrari, Mensink, *Transferability Estimation using Bhattacharyya Class
    Separability*, CVPR 2022; the authors' code is ``get_gbc_score`` in google-research's
    ``stable_transfer/transferability/gbc.py`` (TensorFlow).

    Args:
        features: N×D features of the source model on the target samples, used as given (any dimension
            reduction is left to the caller, as in the reference function).
        labels: N target class indices 0..C−1, every class present (C ≥ 2; a class with one sample gets the
            variance floor).
        gaussian_type: "spherical" (the reference's default: σ²_c I with σ²_c the mean of the per-dimension
            variances) or "diagonal" (diag(σ²_c,1..D)). Per-dimension variances are the biased 1/n_c ones,
            floored at ``min_variance`` (1e-4 in the reference) before averaging.
        reference_spherical: see below; True reproduces the reference's spherical value.

    Returns:
        GBC = −Σ_c Σ_{c'≠c} exp(−D_B(c, c')) ∈ [−C(C − 1), 0]; higher = better (less class overlap). The
        Bhattacharyya distance of two Gaussians with Σ̄ = (Σ_c + Σ_c')/2 is
        D_B = ⅛ Δμᵀ Σ̄⁻¹ Δμ + ½ ln(|Σ̄| / √(|Σ_c| |Σ_c'|)).

    For spherical Gaussians in D dimensions the log-determinant term is (D/2)(ln σ̄² − ½ ln σ²_c − ½ ln σ²_c').
    The reference sums the logs of the scalar variances, which drops the factor D (it equals the diagonal code
    path applied to a scalar); this function uses the formula, and ``reference_spherical=True`` reproduces the
    reference's value. Diagonal Gaussians agree with the reference either way.

    Cost: O(N D + C² D) time, O(C D) memory (class pairs are processed in blocks of at most 4M floats).
    """
    if gaussian_type not in ("spherical", "diagonal"):
        raise DeparaError(f"gaussian_type: expected 'spherical' or 'diagonal', got {gaussian_type!r}")
    if not (np.isfinite(min_variance) and min_variance > 0):
        raise DeparaError(f"min_variance: expected a positive variance floor, got {min_variance}")
    f = _as_features(features, "features", min_rows=2)
    idx, n_classes = _as_class_indices(labels, "labels", f.shape[0])
    n, d = f.shape
    one_hot = _one_hot(idx, n_classes)
    counts = one_hot.sum(axis=0)
    means = (one_hot.T @ f) / counts[:, None]
    variances = np.maximum((one_hot.T @ (f - means[idx]) ** 2) / counts[:, None], min_variance)  # C×D
    distance = np.empty((n_classes, n_classes))
    if gaussian_type == "spherical":
        var = variances.mean(axis=1)  # C
        log_det_scale = 1.0 if reference_spherical else float(d)
        for block in _pairwise_class_blocks(n_classes, d):
            sq = ((means[block, None, :] - means[None, :, :]) ** 2).sum(axis=2)  # b×C
            avg = (var[block, None] + var[None, :]) / 2.0
            distance[block] = (sq / avg / 8.0 + 0.5 * log_det_scale
                               * (np.log(avg) - 0.5 * np.log(var[block, None]) - 0.5 * np.log(var[None, :])))
    else:
        log_var = np.log(variances).sum(axis=1)  # C, log|Σ_c|
        for block in _pairwise_class_blocks(n_classes, d):
            avg = (variances[block, None, :] + variances[None, :, :]) / 2.0  # b×C×D
            sq = ((means[block, None, :] - means[None, :, :]) ** 2 / avg).sum(axis=2)
            distance[block] = (sq / 8.0 + 0.5 * (np.log(avg).sum(axis=2) - 0.5 * log_var[block, None]
                                                 - 0.5 * log_var[None, :]))
    coefficient = np.exp(-distance)
    np.fill_diagonal(coefficient, 0.0)
    return float(-coefficient.sum())


__all__ += ["sfda", "nleep", "parc", "gbc"]
