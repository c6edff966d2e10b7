"""Estimators from the evidence or a generalisation bound of a linear model on the features: LogME, PACTran
(Gaussian prior), PED (LogME after potential-energy descent of the features). numpy/scipy only.

LogME equals the public reference implementation (thuml/LogME at commit 56551ca) on well-posed inputs to 1e-6
relative; where they differ (rank(F) < D) its docstring says what is done and why. PACTran and PED are checked
against their authors' code by ``benchmarks/reference/run_references_b.py``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import scipy.optimize
from scipy.spatial.distance import cdist
from scipy.special import logsumexp, softmax

from ..errors import DeparaError
from .checks import as_class_indices, as_features, count, gram_eigh, one_hot_labels, positive
from .registry import FEATURE_LABEL, estimator

__all__ = ["logme", "logme_resampled", "pactran_gaussian", "ped", "ped_features", "ped_resampled",
           "RESAMPLE_CHUNK_ELEMENTS"]


@estimator("logme", tags=replace(FEATURE_LABEL, supports_regression=True), label="LogME",
           description="log marginal evidence of a Bayesian linear model on the features (per sample, averaged over "
                       "classes)",
           reference="You et al., LogME, ICML 2021",
           adapter=lambda s, t: logme(s.features, t.labels, regression=t.regression),
           resampled=lambda graph, features, labels, idx_sets: np.concatenate(
               [logme_resampled(features, labels, block) for block in idx_sets]))
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
    f = as_features(features, "features")
    n, d = f.shape
    if regression:
        y = as_features(labels if np.ndim(labels) != 1 else np.asarray(labels)[:, None], "targets")
        if y.shape[0] != n:
            raise DeparaError(f"targets: has {y.shape[0]} rows but the features have {n}")
    else:
        idx, n_classes = as_class_indices(labels, "labels", n)
        y = one_hot_labels(idx, n_classes)

    vec_w, vec, on_features = gram_eigh(f)
    # x = Uᵀy, the targets in the basis of the left singular vectors (k×T).
    x = (vec.T @ (f.T @ y)) / np.sqrt(vec_w)[:, None] if on_features else vec.T @ y
    rank = vec_w.shape[0]
    res_x2 = (y**2).sum(axis=0) - (x**2).sum(axis=0)  # part of ‖y‖² outside the column space of F
    evidence = _evidence_fixed_point(vec_w[None, :, None], x[None], res_x2[None], np.ones((1, rank), dtype=bool),
                                     n=n, d=d, rank=rank, max_iter=max_iter, tol=tol)
    return float(np.mean(evidence))


def _pactran_map_head(x: np.ndarray, idx: np.ndarray, n_classes: int, ldas2: float, *, max_iter: int, tol: float,
                      seed: int | None) -> tuple[float, np.ndarray]:
    """PACTran's MAP softmax head on the centred features ``x`` (see :func:`pactran_gaussian`): (L(θ*), the N×C
    softmax at θ*)."""
    n, d = x.shape
    one_hot = one_hot_labels(idx, n_classes)
    rows = np.arange(n)

    def logits_of(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = theta.reshape(d + 1, n_classes)
        return x @ t[:d] + t[d:], t[:d]

    def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        logits, w = logits_of(theta)
        log_q = logits - logsumexp(logits, axis=1, keepdims=True)
        loss = -log_q[rows, idx].sum() / n + 0.5 * np.sum(w * w) / ldas2
        grad_f = (np.exp(log_q) - one_hot) / n
        grad = np.concatenate([x.T @ grad_f + w / ldas2, grad_f.sum(axis=0, keepdims=True)], axis=0)
        return float(loss), grad.ravel()

    rng = np.random.RandomState(seed)  # the legacy stream: same draws as np.random.seed(seed); np.random.normal
    theta0 = np.concatenate([rng.normal(size=(d, n_classes)) * 0.03, np.zeros((1, n_classes))], axis=0).ravel()
    theta = scipy.optimize.minimize(loss_and_grad, theta0, method="L-BFGS-B", jac=True,
                                 options=dict(maxiter=max_iter), tol=tol).x
    pac_opt, _ = loss_and_grad(theta)
    prob = softmax(logits_of(theta)[0], axis=1)
    return pac_opt, prob


@estimator("pactran", tags=FEATURE_LABEL, label="PACTran-G",
           description="minus the PAC-Bayes Gaussian bound of a linear softmax head on the features (PACTran-Gaussian)",
           reference="Ding et al., PACTran, ECCV 2022",
           adapter=lambda s, t: pactran_gaussian(s.features, t.labels))
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
    lam = positive(lda_factor, "lda_factor")
    s2f = 100.0 * lam if s2_factor is None else positive(s2_factor, "s2_factor")
    max_iter = count(max_iter, "max_iter")
    tol = positive(tol, "tol")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise DeparaError(f"seed: expected a non-negative integer or None, got {seed!r}")
    f = as_features(features, "features")
    idx, n_classes = as_class_indices(labels, "labels", f.shape[0])
    x = f - f.mean(axis=0, keepdims=True)
    n, d = x.shape
    ldas2 = lam * n
    pac_opt, prob = _pactran_map_head(x, idx, n_classes, ldas2, max_iter=max_iter, tol=tol, seed=seed)
    h_f = prob - prob**2
    # Σ_{d,c} (x²)ᵀ h_f = Σ_i ‖x_i‖² Σ_c h_ic, without forming the D×C matrix.
    h_sum = np.sum((x**2).sum(axis=1) * h_f.sum(axis=1)) + d * n_classes / ldas2 + h_f.sum()
    kd = d * n_classes
    sigma2_inv = h_sum * ldas2 / kd + 1e-10
    pac_gauss = pac_opt + 0.5 * kd / ldas2 * (s2f / d) * np.log(sigma2_inv)
    return float(-pac_gauss)


def _ped_step(x: np.ndarray, idx: np.ndarray, one_hot: np.ndarray, counts: np.ndarray, centre: np.ndarray,
                scale: np.ndarray, time_step: float, nsigma: float, constant: float) -> tuple[np.ndarray, float]:
    """One step of potential-energy descent (the reference's ``One_Step_PED``); returns (moved x, Σ|shift|)."""
    z = (x - centre) / scale
    means = one_hot.T @ z / counts[:, None]  # C×D
    resid = z - means[idx]
    radius = np.sqrt((one_hot.T @ resid**2).sum(axis=1) / counts)  # √(Σ_d var_cd), ddof 0
    dist = cdist(means, means)
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
    time_step = positive(time_step, "time_step")
    nsigma = positive(nsigma, "nsigma")
    constant = positive(constant, "constant")
    exit_ratio = positive(exit_ratio, "exit_ratio")
    eps = positive(eps, "eps")
    max_steps = count(max_steps, "max_steps", minimum=0)
    x = as_features(features, "features")
    idx, n_classes = as_class_indices(labels, "labels", x.shape[0])
    ref = x if general_features is None else as_features(general_features, "general_features")
    if ref.shape[1] != x.shape[1]:
        raise DeparaError(f"general_features: has {ref.shape[1]} columns but the features have {x.shape[1]}")
    centre = ref.mean(axis=0)
    scale = np.maximum(ref.std(axis=0), eps)
    one_hot = one_hot_labels(idx, n_classes)
    counts = np.bincount(idx, minlength=n_classes).astype(np.float64)
    first = None
    steps = 0
    while steps < max_steps:
        moved, change = _ped_step(x, idx, one_hot, counts, centre, scale, time_step, nsigma, constant)
        if first is None:
            first = change
        # Stop once a step moves less than exit_ratio of the first; no motion at all (first = 0) stops at once
        # (the reference computes 0/0 = NaN there, which also stops it).
        if first == 0 or not change / first > exit_ratio:
            break
        x = moved
        steps += 1
    return x.copy() if steps == 0 else x, steps


@estimator("ped", tags=FEATURE_LABEL, label="PED",
           description="LogME on features moved by potential-energy descent (PED)",
           reference="Li et al., PED, ICCV 2023",
           adapter=lambda s, t: ped(s.features, t.labels),
           resampled=lambda graph, features, labels, idx_sets: np.concatenate(
               [ped_resampled(features, labels, block) for block in idx_sets]))
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


# ------------------------------------------------------------------------------ many resamples at once
#: Float64 elements a chunk of resamples may hold in one array (8 MiB): bounds the memory of
#: :func:`ped_resampled` whatever the number of resamples.
RESAMPLE_CHUNK_ELEMENTS = 1_000_000


def _logme_stack(one_hot: np.ndarray, d: int, *, f: np.ndarray | None = None, gram: np.ndarray | None = None,
                 max_iter: int = 11, tol: float = 1e-3) -> np.ndarray:
    """:func:`logme` of R classification problems at once → (R,): one_hot R×N×C (every class present in every
    row), D features; ``f`` the R×N×D features, or (when N ≤ D) ``gram`` their R×N×N ``f fᵀ`` alone. The same
    fixed-point iteration, each (row, class) frozen where it converges; the eigenvalues :func:`gram_eigh` drops
    (round-off) are masked out instead of removed, so the sums are the same."""
    r, n, _ = one_hot.shape
    on_features = n > d
    if on_features:
        gram = np.matmul(f.transpose(0, 2, 1), f)
    elif gram is None:
        gram = np.matmul(f, f.transpose(0, 2, 1))
    w, vec = np.linalg.eigh(gram)
    w, vec = w[:, ::-1], vec[:, :, ::-1]
    tol_w = np.maximum(w[:, :1], 0.0) * max(n, d) * np.finfo(np.float64).eps
    keep = w > tol_w  # R×G
    if on_features:
        x = np.matmul(vec.transpose(0, 2, 1), np.matmul(f.transpose(0, 2, 1), one_hot))
        x /= np.sqrt(np.where(keep, w, 1.0))[:, :, None]
    else:
        x = np.matmul(vec.transpose(0, 2, 1), one_hot)
    x = np.where(keep[:, :, None], x, 0.0)
    res_x2 = (one_hot**2).sum(axis=1) - (x**2).sum(axis=1)  # R×C
    return _evidence_fixed_point(np.where(keep, w, 0.0)[:, :, None], x, res_x2, keep, n=n, d=d,
                                 rank=keep.sum(axis=1)[:, None], max_iter=max_iter, tol=tol).mean(axis=1)


def _evidence_fixed_point(sigma: np.ndarray, x: np.ndarray, res_x2: np.ndarray, keep: np.ndarray, *, n: int, d: int,
                          rank, max_iter: int, tol: float) -> np.ndarray:
    """LogME's fixed point (thuml/LogME ``_fit_fixed_point``) for R problems of T targets at once → R×T per-sample
    evidences. sigma R×G×1: the eigenvalues of FᵀF (0 where ``keep`` R×G masks one out); x R×G×T: the targets in
    the basis of the left singular vectors (0 where masked); res_x2 R×T: the part of ‖y‖² outside the column space;
    rank: the kept eigenvalues (R×1 or a number). Each (problem, target) is frozen where it converges; sums over the
    eigenvalues as products (masked ones contribute 0)."""
    sigma_row = sigma.transpose(0, 2, 1)  # R×1×G
    sigma_ones = np.concatenate([sigma_row, np.ones_like(sigma_row)], axis=1)  # R×2×G
    x2 = x**2
    shape = res_x2.shape
    alpha, beta = np.ones(shape), np.ones(shape)
    m2_fin, res2_fin = np.zeros(shape), np.zeros(shape)
    active = np.ones(shape, dtype=bool)
    for _ in range(max_iter):
        t = alpha / beta
        u = 1.0 / (sigma + t[:, None, :])  # R×G×C: 1/(σ + t)
        v = x2 * u * u  # x²/(σ + t)²
        gamma = np.matmul(sigma_row, u)[:, 0]  # Σ σ/(σ + t)
        m2, v_sum = np.matmul(sigma_ones, v).transpose(1, 0, 2)  # Σ σ x²/(σ + t)², Σ x²/(σ + t)²
        res2 = t**2 * v_sum + res_x2  # Σ x²/(1 + σ/t)² + the part outside the column space
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
    log_terms = np.where(keep[:, :, None], np.log(alpha[:, None, :] + beta[:, None, :] * sigma), 0.0)
    log_det_a = log_terms.sum(axis=1) + (d - rank) * np.log(alpha)
    evidence = (d / 2.0 * np.log(alpha) + n / 2.0 * np.log(beta) - 0.5 * log_det_a
                - beta / 2.0 * res2_fin - alpha / 2.0 * m2_fin - n / 2.0 * np.log(2 * np.pi)) / n
    return evidence


def _ped_moves(start: np.ndarray, radius: np.ndarray, **steps: float) -> np.ndarray:
    """PED's steps (:func:`ped_features`) of R problems at once, on their class means alone: start R×C×D class
    means of the standardised features, radius R×C (constant: a step moves every sample of a class by the same
    shift, so the within-class residuals never change) → R×C×D, how far each mean moved in the problem's
    accepted steps.

    A step moves each mean along differences of means, so the means never leave the affine span of the first
    ones, of dimension < C: when D > C the steps run on the means' coordinates in an orthonormal basis of that
    span (a QR factorisation of the centred means), where distances and displacements are the same (to
    round-off; means that coincide have the same coordinates, so they still do not move), and the moves are
    mapped back to the D features."""
    n_classes, d = start.shape[1:]
    if d <= n_classes:
        return _ped_steps(start, radius, **steps) - start
    centred = start - start.mean(axis=1, keepdims=True)  # R×C×D
    basis = np.linalg.qr(centred.transpose(0, 2, 1))[0]  # R×D×C, orthonormal columns spanning the centred means
    coords = np.matmul(centred, basis)  # R×C×C
    return np.matmul(_ped_steps(coords, radius, **steps) - coords, basis.transpose(0, 2, 1))


def _ped_steps(start: np.ndarray, radius: np.ndarray, *, time_step: float, nsigma: float, constant: float,
               exit_ratio: float, max_steps: int) -> np.ndarray:
    """The R×C×K means after PED's accepted steps from the means ``start`` (any K; see :func:`_ped_moves`)."""
    r, n_classes = radius.shape
    means = start.copy()
    rows, mu, rad = np.arange(r), start, radius  # the problems still stepping, their means and radii
    first = np.full(r, np.nan)
    diag = np.arange(n_classes)
    for step in range(max_steps):
        if rows.size == 0:
            break
        dist = np.zeros((rows.size, n_classes, n_classes))  # A×C×C, zero on the diagonal
        for c in range(n_classes - 1):  # each pair once: ‖μ_a − μ_b‖ = ‖μ_b − μ_a‖ exactly
            diff = mu[:, c + 1:] - mu[:, c:c + 1]
            dist[:, c, c + 1:] = dist[:, c + 1:, c] = np.sqrt((diff * diff).sum(axis=2))
        overlap = np.maximum(nsigma * (rad[:, :, None] + rad[:, None, :]) - dist, 0.0)
        overlap[:, diag, diag] = 0.0
        move = np.minimum(0.5 * time_step**2 * constant * overlap, overlap)
        weight = np.divide(move, dist, out=np.zeros_like(move), where=dist > 0)
        # shift_a = Σ_b w_ab (μ_a − μ_b) = (diag(Σ_b w_ab) − W) μ: one product
        weight *= -1.0
        weight[:, diag, diag] = -weight.sum(axis=2)
        shift = np.matmul(weight, mu)
        change = np.abs(shift).sum(axis=(1, 2))
        if step == 0:
            first[rows] = change
        with np.errstate(invalid="ignore", divide="ignore"):
            stop = (first[rows] == 0) | ~(change / first[rows] > exit_ratio)
        if stop.any():  # these keep their current means; the others step on
            means[rows[stop]] = mu[stop]
            go = ~stop
            rows, mu, rad, shift = rows[go], mu[go], rad[go], shift[go]
        mu = mu + shift
    means[rows] = mu
    return means


#: PED's defaults (:func:`ped`), the ones :func:`ped_resampled` uses.
_PED_STEPS = dict(time_step=0.1, nsigma=0.6, constant=1.0, exit_ratio=0.5, max_steps=6)


def _ped_stack(x: np.ndarray, idx: np.ndarray, n_classes: int, eps: float = 1e-3) -> np.ndarray:
    """:func:`ped` (its defaults, LogME inside) of R problems at once: x R×N×D float64, idx R×N class indices
    (every class in every row) → (R,). The steps run on the class means (:func:`_ped_moves`), and the samples
    move once, by the sum of their class's shifts (the same values as :func:`ped_features`' sample-by-sample
    steps, up to round-off)."""
    r = x.shape[0]
    one_hot = np.zeros((*idx.shape, n_classes))
    one_hot[np.arange(r)[:, None], np.arange(idx.shape[1])[None, :], idx] = 1.0
    oh_t = one_hot.transpose(0, 2, 1)
    counts = one_hot.sum(axis=1)  # R×C
    centre = x.mean(axis=1, keepdims=True)
    scale = np.maximum(x.std(axis=1, keepdims=True), eps)
    z = (x - centre) / scale
    start = np.matmul(oh_t, z) / counts[:, :, None]  # R×C×D class means
    resid = z - np.matmul(one_hot, start)  # each sample's class mean (a one-hot product: exact)
    radius = np.sqrt(np.matmul(oh_t, resid**2).sum(axis=2) / counts)  # R×C, √(Σ_d var_cd), ddof 0
    moves = _ped_moves(start, radius, **_PED_STEPS)
    return _logme_stack(one_hot, x.shape[2], f=x + np.matmul(one_hot, moves * scale))


def _by_class(f: np.ndarray, idx_c: np.ndarray, n_classes: int) -> tuple[np.ndarray, ...]:
    """(each sample's position in class order, the C + 1 class boundaries in that order, the features centred
    over the full set in that order, their squares): what :func:`_ped_wide` sums class by class, made once."""
    order = np.argsort(idx_c, kind="stable")  # within a class the samples keep their order
    position = np.empty_like(order)
    position[order] = np.arange(order.size)
    bounds = np.concatenate([[0], np.cumsum(np.bincount(idx_c, minlength=n_classes))])
    f0 = (f - f.mean(axis=0))[order]
    return position, bounds, f0, f0**2


def _ped_wide(f: np.ndarray, sets: np.ndarray, idx_c: np.ndarray, n_classes: int, gram_full: np.ndarray,
              by_class: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], eps: float = 1e-3) -> np.ndarray:
    """:func:`_ped_stack` for resamples of at most D samples, without gathering any resample's M×D features:
    each per-resample statistic is a sum over its samples, taken for all resamples at once as products of their
    0/1 membership with the features, class by class; PED's statistics (means, standard deviations, radii) do not
    change when the features are shifted, so they are taken on features centred over the full set (a few digits
    lost to cancellation, far below the values' scale). LogME works on the moved samples' Gram matrix,
    x xᵀ (a block of the full set's) + P Oᵀ + O Pᵀ + O U Uᵀ Oᵀ with O the one-hot labels, U the class shifts in
    feature scale, P = x Uᵀ (a product of the full set with U): no M×D array per resample. ``by_class``: the
    samples' positions when sorted by class, the class boundaries in that order, and the centred features and
    their squares in that order (:func:`_by_class`, made once for all chunks)."""
    r, m = sets.shape
    rows = np.arange(r)[:, None]
    one_hot = np.zeros((r, m, n_classes))
    one_hot[rows, np.arange(m)[None, :], idx_c[sets]] = 1.0
    oh_t = one_hot.transpose(0, 2, 1)
    counts = one_hot.sum(axis=1)[:, :, None]  # R×C×1
    position, bounds, f0, f0_sq = by_class
    member = np.zeros((r, f.shape[0]))  # the samples in class order: each class a contiguous block
    member[rows, position[sets]] = 1.0
    blocks = [slice(bounds[c], bounds[c + 1]) for c in range(n_classes)]
    sums = np.stack([member[:, k] @ f0[k] for k in blocks], axis=1)  # R×C×D
    squares = np.stack([member[:, k] @ f0_sq[k] for k in blocks], axis=1)
    centre = sums.sum(axis=1, keepdims=True) / m  # R×1×D
    scale = np.maximum(np.sqrt(np.maximum(squares.sum(axis=1, keepdims=True) / m - centre**2, 0.0)), eps)
    class_mean = sums / counts
    start = (class_mean - centre) / scale  # R×C×D class means of the standardised features
    radius = np.sqrt((np.maximum(squares / counts - class_mean**2, 0.0) / scale**2).sum(axis=2))  # R×C
    shifts = _ped_moves(start, radius, **_PED_STEPS) * scale  # R×C×D, in feature scale
    cross = (f @ shifts.reshape(-1, f.shape[1]).T).reshape(f.shape[0], r, n_classes)  # N×R×C: f_i · U_rc
    p = np.matmul(cross[sets, rows], oh_t)  # R×M×M
    gram = gram_full[sets[:, :, None], sets[:, None, :]] + p + p.transpose(0, 2, 1) + \
        np.matmul(one_hot, np.matmul(np.matmul(shifts, shifts.transpose(0, 2, 1)), oh_t))
    return _logme_stack(one_hot, f.shape[1], gram=gram)


def _resample_inputs(features, labels, idx_sets) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """The checked inputs of a many-resamples-at-once estimator: (features N×D float64, class indices, the number
    of classes, ``idx_sets`` R×M, M >= 2, every row holding every class); DeparaError naming the argument."""
    f = as_features(features, "features")
    idx_c, n_classes = as_class_indices(labels, "labels", f.shape[0])
    sets = np.asarray(idx_sets)
    if sets.ndim != 2 or sets.shape[1] < 2 or not np.issubdtype(sets.dtype, np.integer) \
            or (sets.size and (sets.min() < 0 or sets.max() >= f.shape[0])):
        raise DeparaError(f"idx_sets: expected R×M integer indices into the {f.shape[0]} samples, M >= 2, got "
                          f"{sets.dtype} array of shape {sets.shape}")
    present = np.zeros((sets.shape[0], n_classes), dtype=bool)
    present[np.arange(sets.shape[0])[:, None], idx_c[sets]] = True
    if not present.all():
        raise DeparaError(f"idx_sets: row {int(np.flatnonzero(~present.all(axis=1))[0])} lacks a class of labels")
    return f, idx_c, n_classes, sets


def logme_resampled(features, labels, idx_sets) -> np.ndarray:
    """:func:`logme` (classification, default arguments) on each resample of the samples at once: ``idx_sets``
    R×M indices into ``features`` (N×D) and ``labels`` (N class indices); row r scores ``features[idx_sets[r]]``
    with its labels. Every row must hold every class of ``labels`` (DeparaError naming ``idx_sets`` otherwise).
    (R,) float array, equal to the row-by-row :func:`logme` up to round-off: one batched eigendecomposition per
    chunk (of each row's M×M Gram matrix, a block of the full set's, when M <= D; else of its D×D one) and one
    fixed point for all rows; chunks of at most :data:`RESAMPLE_CHUNK_ELEMENTS` float64 values per array."""
    f, idx_c, n_classes, sets = _resample_inputs(features, labels, idx_sets)
    m, d = sets.shape[1], f.shape[1]
    one_hot = np.eye(n_classes)[idx_c]
    if m <= d:
        gram_full = f @ f.T
        step = max(1, RESAMPLE_CHUNK_ELEMENTS // (2 * m * m + m * n_classes))
        parts = [_logme_stack(one_hot[block], d, gram=gram_full[block[:, :, None], block[:, None, :]])
                 for block in (sets[i:i + step] for i in range(0, len(sets), step))]
    else:
        step = max(1, RESAMPLE_CHUNK_ELEMENTS // (m * d + 2 * d * d + m * n_classes))
        parts = [_logme_stack(one_hot[block], d, f=f[block])
                 for block in (sets[i:i + step] for i in range(0, len(sets), step))]
    return np.concatenate(parts) if parts else np.empty(0)


def ped_resampled(features, labels, idx_sets) -> np.ndarray:
    """:func:`ped` (default arguments) on each resample of the samples at once: ``idx_sets`` R×M indices into
    ``features`` (N×D) and ``labels`` (N class indices); row r scores ``features[idx_sets[r]]`` with its labels.
    Every row must hold every class of ``labels`` (DeparaError naming ``idx_sets`` otherwise; relabel or score
    that row alone with :func:`ped`). (R,) float array, equal to the row-by-row :func:`ped` up to round-off; the
    rows go through in chunks of at most :data:`RESAMPLE_CHUNK_ELEMENTS` float64 values per array."""
    f, idx_c, n_classes, sets = _resample_inputs(features, labels, idx_sets)
    y = idx_c[sets]
    n, d = sets.shape[1], f.shape[1]
    if n <= d:  # LogME on the resamples' Gram matrices: no resample's features gathered
        gram_full = f @ f.T  # every resample's x xᵀ is a block of it
        step = max(1, RESAMPLE_CHUNK_ELEMENTS // ((2 + n_classes) * n_classes * d + (1 + n_classes) * f.shape[0]
                                                  + n * n))
        by_class = _by_class(f, idx_c, n_classes)
        parts = [_ped_wide(f, sets[i:i + step], idx_c, n_classes, gram_full, by_class)
                 for i in range(0, len(sets), step)]
    else:
        step = max(1, RESAMPLE_CHUNK_ELEMENTS // (n * max(d, n_classes) + n_classes * n_classes * d + d * d))
        parts = [_ped_stack(f[sets[i:i + step]], y[i:i + step], n_classes) for i in range(0, len(sets), step)]
    return np.concatenate(parts) if parts else np.empty(0)
