"""Estimators of how well the target classes separate in the source's features: H-score, TransRate, GBC, SFDA,
ETran, NCTI. numpy/scipy only.

H-score and TransRate equal ``tllib.ranking`` of thuml/Transfer-Learning-Library (commit c4aa59e) on well-posed
inputs to 1e-6 relative (H-score on singular covariances: its docstring says what is done). The recent four are
checked against their authors' code by ``benchmarks/reference/run_references_a.py`` / ``_b.py``. ETran and NCTI
are defined by their authors over a *set* of candidate models (each term min–max scaled across the candidates
before the terms are added): the per-pair functions return the unscaled sum, ``etran_combine`` /
``ncti_combine`` the candidate-set score.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
from scipy.special import logsumexp, softmax

from ..errors import DeparaError
from .checks import (as_class_indices, as_features, count, gram_eigh, minmax, one_hot_labels, positive,
                     power_top_eigenvalue, softmax_rows)
from .registry import FEATURE_LABEL, estimator

__all__ = ["h_score", "transrate", "gbc", "sfda", "shrunk_lda_proba", "etran", "etran_components", "etran_combine",
           "ncti", "ncti_components", "ncti_combine"]


@estimator("hscore", tags=FEATURE_LABEL, label="H-score", aliases=('h_score', 'h-score'),
           description="tr(cov(f)^+ cov(E[f|y])): class separability of the features",
           reference="Bao et al., H-score, ICIP 2019",
           adapter=lambda s, t: h_score(s.features, t.labels))
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
    f = as_features(features, "features")
    idx, n_classes = as_class_indices(labels, "labels", f.shape[0])
    centred = f - f.mean(axis=0, keepdims=True)
    w, vec, on_features = gram_eigh(centred)
    counts = np.bincount(idx, minlength=n_classes).astype(np.float64)
    one_hot = one_hot_labels(idx, n_classes)
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


@estimator("transrate", tags=FEATURE_LABEL, label="TransRate",
           description="coding rate R(Z) minus the mean class-conditional coding rate (nats)",
           reference="Huang et al., TransRate, ICML 2022",
           adapter=lambda s, t: transrate(s.features, t.labels, eps=t.transrate_eps))
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
    f = as_features(features, "features")
    idx, n_classes = as_class_indices(labels, "labels", f.shape[0])
    z = f - f.mean(axis=0, keepdims=True)
    class_rates = [_coding_rate(z[idx == c], eps) for c in range(n_classes)]
    return float(_coding_rate(z, eps) - sum(class_rates) / n_classes)


@estimator("gbc", tags=FEATURE_LABEL, label="GBC",
           description="minus the summed Bhattacharyya coefficients between per-class Gaussians (class overlap)",
           reference="Pándy et al., GBC, CVPR 2022",
           adapter=lambda s, t: gbc(s.features, t.labels))
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
    f = as_features(features, "features", min_rows=2)
    idx, n_classes = as_class_indices(labels, "labels", f.shape[0])
    n, d = f.shape
    one_hot = one_hot_labels(idx, n_classes)
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


def _pairwise_class_blocks(n_classes: int, d: int, budget: int = 1 << 22):
    """Row blocks of the C×C class pairs so that one block of differences holds ≤ ``budget`` floats."""
    step = max(1, budget // max(1, n_classes * d))
    return [slice(s, min(s + step, n_classes)) for s in range(0, n_classes, step)]


def shrunk_lda_proba(x: np.ndarray, idx: np.ndarray, n_classes: int, priors: np.ndarray,
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
    means = (one_hot_labels(idx, n_classes).T @ x) / counts[:, None]
    centred = x - means[idx]
    sw = centred.T @ centred / n  # = Σ_c (n_c / n) · cov_c with the biased 1/n_c covariance
    trace = float(np.trace(sw))
    if not trace > 0:
        raise DeparaError("features: the within-class scatter is zero (every class is a single repeated point), "
                          "SFDA is undefined")
    if shrinkage is None:
        shrinkage = max(float(np.exp(-5.0 * power_top_eigenvalue(sw))), 1e-10)
    shrunk = (1.0 - shrinkage) * sw
    shrunk.flat[:: d + 1] += shrinkage * trace / d
    try:
        coef = scipy.linalg.solve(shrunk, means.T, assume_a="pos").T  # C×D, μ_c ᵀ Sw⁻¹
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
        raise DeparaError("features: the shrunk within-class covariance is not positive definite") from None
    intercept = -0.5 * np.einsum("cd,cd->c", means, coef) + np.log(priors)
    return softmax_rows(x @ coef.T + intercept), shrinkage


@estimator("sfda", tags=FEATURE_LABEL, label="SFDA",
           description="self-challenging Fisher discriminant analysis: mean probability of the true class after "
                       "ConfMix",
           reference="Shao et al., SFDA, ECCV 2022",
           adapter=lambda s, t: sfda(s.features, t.labels))
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
           s = max(exp(−5 λ_max(Sw)), 1e-10) (see ``shrunk_lda_proba``);
        2. the authors soften it once more, q = softmax(p₁) (a softmax of probabilities, as in their code);
        3. ConfMix: x̃_i = q_{i,y_i} x_i + (1 − q_{i,y_i}) μ̄_{y_i}, with μ̄_c the mean of the other classes'
           means, so that uncertain samples are pulled towards the other classes (the "self-challenge");
        4. p₂ = shrunk-LDA posteriors of F̃ with the same s; the score is their mean on the true class (the
           authors leave out the log "in case of instability"; so does this function).

    Cost: O(N D² + D³ + N C D) time, O(D² + N D) memory (twice). The reference's Sb and its generalised
    eigen-decomposition do not affect the value (its posteriors use V Vᵀ = Sw⁻¹ only); they are not computed.
    Unlike the reference, the caller's ``features`` are not modified (the reference mixes them in place).
    """
    f = as_features(features, "features")
    idx, n_classes = as_class_indices(labels, "labels", f.shape[0])
    n = f.shape[0]
    priors = np.bincount(idx, minlength=n_classes) / float(n)
    proba, shrinkage = shrunk_lda_proba(f, idx, n_classes, priors, None)
    soft = softmax_rows(proba)
    class_means = (one_hot_labels(idx, n_classes).T @ f) / (priors * n)[:, None]
    others = (class_means.sum(axis=0, keepdims=True) - class_means) / (n_classes - 1)
    conf = soft[np.arange(n), idx][:, None]
    mixed = conf * f + (1.0 - conf) * others[idx]
    proba2, _ = shrunk_lda_proba(mixed, idx, n_classes, priors, shrinkage)
    return float(np.mean(proba2[np.arange(n), idx]))


def _energy_score(f: np.ndarray, energy_percent: float) -> float:
    """Mean of the lowest log-sum-exp energies (the reference's ``Energy_Score(f, percent, 'bot')``)."""
    energy = logsumexp(f, axis=1)
    n = energy.shape[0]
    # The reference keeps int(percent·10)·N // 1000 samples (percent in steps of 0.1 %) and averages an empty
    # set (NaN) when that is 0, i.e. for N < 200 at 0.5 %; at least one sample is kept here.
    k = max(1, int(round(energy_percent * 10)) * n // 1000)
    return float(np.partition(energy, k - 1)[:k].mean())


def _lda_score(f: np.ndarray, idx: np.ndarray, n_classes: int, whiten: bool) -> float:
    """Mean posterior of the true class under the ETran reference's LDA classifier (see :func:`etran`)."""
    n, d = f.shape
    counts = np.bincount(idx, minlength=n_classes).astype(np.float64)
    priors = counts / n
    means = (one_hot_labels(idx, n_classes).T @ f) / counts[:, None]  # C×D
    if whiten:
        resid = f - means[idx]
        sw = resid.T @ resid / n  # Σ_c π_c cov_c (biased), the reference's within-class scatter
        top = power_top_eigenvalue(sw)
        shrink = max(np.exp(-5.0 * top), 1e-10)
        sw_shrunk = (1.0 - shrink) * sw
        sw_shrunk.flat[:: d + 1] += shrink * np.trace(sw) / d
        coef = np.linalg.solve(sw_shrunk, means.T).T  # Σ⁻¹μ_c, C×D
    else:
        coef = means
    logits = f @ coef.T - 0.5 * np.einsum("cd,cd->c", means, coef) + np.log(priors)
    prob = softmax(logits, axis=1)
    return float(np.mean(prob[np.arange(n), idx]))


def etran_components(features, labels, *, energy_percent: float = 0.5, whiten: bool = False) -> dict[str, float]:
    """The two terms of ETran for classification: energy S_en and LDA classification score S_lda.

    See :func:`etran`. Returns ``{"energy": S_en, "lda": S_lda}``; both are higher = more transferable.
    """
    pct = positive(energy_percent, "energy_percent")
    if pct > 100:
        raise DeparaError(f"energy_percent: expected a percentage in (0, 100], got {energy_percent!r}")
    f = as_features(features, "features")
    idx, n_classes = as_class_indices(labels, "labels", f.shape[0])
    return {"energy": _energy_score(f, pct), "lda": _lda_score(f, idx, n_classes, bool(whiten))}


@estimator("etran", tags=FEATURE_LABEL, label="ETran",
           description="energy of the lowest-energy samples plus the LDA posterior of the true class (ETran, unscaled "
                       "sum)",
           reference="Gholami et al., ETran, ICCV 2023",
           adapter=lambda s, t: etran(s.features, t.labels))
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
    e, l_ = minmax(energy, "energy"), minmax(lda, "lda")
    if e.shape != l_.shape:
        raise DeparaError(f"lda: has {l_.shape[0]} candidates but energy has {e.shape[0]}")
    return float(energy_weight) * e + (1.0 - float(energy_weight)) * l_


def _pca(f: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact PCA: (N×k scores, all explained variances with ddof 1, descending) via the smaller Gram matrix."""
    x = f - f.mean(axis=0, keepdims=True)
    w, vec, on_features = gram_eigh(x)
    k = min(k, w.shape[0])
    scores = x @ vec[:, :k] if on_features else vec[:, :k] * np.sqrt(w[:k])
    return scores, w / (f.shape[0] - 1)


def ncti_components(features, labels, *, n_components: int = 64) -> dict[str, float]:
    """The three terms of NCTI: ``seli``, ``ncc`` and ``vc`` (see :func:`ncti`)."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    n_components = count(n_components, "n_components", minimum=2)
    f = as_features(features, "features")
    idx, n_classes = as_class_indices(labels, "labels", f.shape[0])
    n = f.shape[0]
    if n <= n_classes:
        raise DeparaError(f"labels: NCTI's LDA needs more samples than classes, got N={n} and C={n_classes}")
    z, explained = _pca(f, n_components)
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


@estimator("ncti", tags=FEATURE_LABEL, label="NCTI",
           description="neural-collapse distance: LDA spread + NCC posterior − log class-wise nuclear norm (NCTI, "
                       "unscaled)",
           reference="Wang et al., NCTI, ICCV 2023",
           adapter=lambda s, t: ncti(s.features, t.labels))
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
    s, c, v = minmax(seli, "seli"), minmax(ncc, "ncc"), minmax(vc, "vc")
    if not (s.shape == c.shape == v.shape):
        raise DeparaError(f"ncc/vc: expected one value per candidate like seli ({s.shape[0]}), got {c.shape[0]} "
                          f"and {v.shape[0]}")
    return c + s - v
