"""Test-scale data in the published Taskonomy formats (eval's tests and the docs example).

20 tasks (the real names), N probes, D-dim features, H×W×C gradient×input maps. Tasks come in latent groups: a
task's feature map is the probes' latent code times a group matrix plus task noise, and its attribution maps mix
a group pattern with task noise, so DEPARA/RSA recover the groups. The ground truth is the cosine similarity of the
task matrices, written as ``sort_gt`` rows (+ tasks.txt) for the 18 non-source-only targets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TASKS = ["autoencoder", "curvature", "denoise", "edge2d", "edge3d", "keypoint2d", "keypoint3d", "colorization",
         "reshade", "rgb2depth", "rgb2mist", "rgb2sfnorm", "room_layout", "segment25d", "segment2d",
         "vanishing_point", "segmentsemantic", "class_1000", "class_places", "inpainting_whole"]
SOURCE_ONLY = ("colorization", "inpainting_whole")


def make_taskonomy_like(root: Path, *, n: int = 12, d: int = 16, hw: int = 8, c: int = 2, seed: int = 0,
                        n_groups: int = 4, noise: float = 0.6, tasks=TASKS, write_tasks_txt: bool = True,
                        attributions: bool = True) -> tuple[list[str], np.ndarray]:
    """Write ``root/<task>/task_feature.npy`` (n×d) and ``gradXinput.npy`` (n×hw×hw×c); return (tasks, truth).

    ``truth`` is the G×G target-by-source truth (cosine of task matrices), NaN rows for source-only tasks.
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    k = 6
    latent = rng.normal(size=(n, k))
    centres = rng.normal(size=(n_groups, k, d))
    patterns = rng.normal(size=(n_groups, n, hw, hw, c))
    mats = []
    for i, task in enumerate(tasks):
        g = i % n_groups
        w = centres[g] + noise * rng.normal(size=(k, d))
        mats.append(w.reshape(-1))
        feats = latent @ w + 0.1 * rng.normal(size=(n, d))
        tdir = root / task
        tdir.mkdir(parents=True, exist_ok=True)
        np.save(tdir / "task_feature.npy", feats.astype(np.float32))
        if attributions:
            maps = patterns[g] + noise * rng.normal(size=(n, hw, hw, c))
            np.save(tdir / "gradXinput.npy", maps.astype(np.float32))
    if write_tasks_txt:
        (root / "tasks.txt").write_text("\n".join(tasks) + "\n")
    m = np.array(mats)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    truth = m @ m.T
    np.fill_diagonal(truth, np.nan)
    for t in SOURCE_ONLY:
        if t in tasks:
            truth[list(tasks).index(t)] = np.nan
    return list(tasks), truth


def write_sort_gt(folder: Path, tasks, truth: np.ndarray) -> Path:
    """Write ``tasks.txt`` and ``sort_gt_18x20.csv`` (rows ``[target, sources by descending truth]``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tasks.txt").write_text("\n".join(tasks) + "\n")
    rows = []
    for i in range(len(tasks)):
        if np.all(np.isnan(np.delete(truth[i], i))):
            continue
        others = [j for j in range(len(tasks)) if j != i]
        others.sort(key=lambda j: -truth[i, j])
        rows.append([i, *others])
    path = folder / "sort_gt_18x20.csv"
    path.write_text("\n".join(",".join(str(v) for v in r) for r in rows) + "\n")
    return path
