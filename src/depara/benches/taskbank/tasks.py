"""The task registry of the bank: what each task sees, what it predicts, and how it is scored.

A :class:`Task` names its input corruption (``clean`` photo, ``noisy`` photo, ``grey`` photo, ``masked``
photo), builds its target array from a :class:`~depara.benches.taskbank.scenes.SceneBatch`, and carries its loss:

- ``mse``: dense or global regression, target float N×C×H×W or N×C;
- ``bce``: dense binary map, target float N×1×H×W in {0, 1} (or soft);
- ``ce``:  classification, target int64 N×H×W (dense) or N (global), ``out_channels`` classes.

Like Taskonomy, the tasks whose *input* is not the photo (colorization, inpainting) are sources only:
they are ranked as candidate sources but never scored as targets.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ...errors import DeparaError
from .scenes import SHAPE_CLASSES, SceneBatch

INPUTS = ("clean", "noisy", "grey", "masked")
NOISE_SIGMA = 0.15


@dataclass(frozen=True)
class Task:
    """One task of the bank (see module docstring for the target conventions)."""

    name: str
    kind: str  # "dense" | "global"
    loss: str  # "mse" | "bce" | "ce"
    out_channels: int
    target_fn: Callable[[SceneBatch], np.ndarray]
    input: str = "clean"
    is_target: bool = True
    description: str = ""

    def targets(self, scenes: SceneBatch) -> np.ndarray:
        """Target array for ``scenes`` (float32 N×C×H×W / N×C, or int64 labels for ``ce``)."""
        return self.target_fn(scenes)

    @property
    def is_classification(self) -> bool:
        return self.loss == "ce"


def _chw(a: np.ndarray) -> np.ndarray:
    """N×H×W×C or N×H×W -> float32 N×C×H×W."""
    a = a[..., None] if a.ndim == 3 else a
    return np.ascontiguousarray(np.moveaxis(a, -1, 1), dtype=np.float32)


def _image(s: SceneBatch) -> np.ndarray:
    return _chw(s.image)


_TASKS: tuple[Task, ...] = (
    Task("autoencoding", "dense", "mse", 3, _image, description="reconstruct the photo"),
    Task("denoising", "dense", "mse", 3, _image, input="noisy", description="clean photo from a noisy one"),
    Task("colorization", "dense", "mse", 3, _image, input="grey", is_target=False,
         description="colour photo from its grey version"),
    Task("inpainting", "dense", "mse", 3, _image, input="masked", is_target=False,
         description="whole photo from one with a masked centre"),
    Task("edge2d", "dense", "mse", 1, lambda s: _chw(s.image_edges), description="Sobel edges of the photo"),
    Task("edge3d", "dense", "bce", 1, lambda s: _chw(s.occlusion_edges), description="occlusion boundaries"),
    Task("depth", "dense", "mse", 1, lambda s: _chw(s.depth), description="depth map"),
    Task("normal", "dense", "mse", 3, lambda s: _chw(s.normals), description="surface normals"),
    Task("reshading", "dense", "mse", 1, lambda s: _chw(s.shading), description="shading under the light"),
    Task("segment2d", "dense", "bce", 1, lambda s: _chw((s.instance > 0).astype(np.float32)),
         description="object vs background mask"),
    Task("segmentsemantic", "dense", "ce", len(SHAPE_CLASSES) + 1, lambda s: s.semantic.astype(np.int64),
         description="per-pixel shape class (0 = background)"),
    Task("keypoints", "dense", "mse", 1, lambda s: _chw(s.keypoints), description="object centre heat map"),
    Task("count", "global", "ce", 4, lambda s: (s.count - 1).astype(np.int64),
         description="number of visible objects (1..4)"),
    Task("shape", "global", "ce", len(SHAPE_CLASSES), lambda s: s.shape.astype(np.int64),
         description="shape class of the largest visible object"),
    Task("light", "global", "mse", 3, lambda s: s.light.astype(np.float32), description="light direction"),
)

TASKS: dict[str, Task] = {t.name: t for t in _TASKS}
TASK_NAMES: tuple[str, ...] = tuple(TASKS)


def get_task(name: str) -> Task:
    """The task called ``name``; an unknown name raises a DeparaError listing close matches."""
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), TASK_NAMES, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"known tasks: {', '.join(TASK_NAMES)}"
        raise DeparaError(f"unknown task {name!r}: {hint}") from None


def resolve_tasks(names) -> list[Task]:
    """Tasks for ``names`` (validated, duplicates rejected), in the given order."""
    names = list(names)
    if len(set(names)) != len(names):
        raise DeparaError(f"task list {names}: contains duplicates")
    return [get_task(n) for n in names]


def task_inputs(task: Task, scenes: SceneBatch, *, seed: int = 0, start: int = 0) -> np.ndarray:
    """The task's network input for ``scenes``: float32 N×3×H×W in [-1, 1] (Taskonomy's input range).

    Corruptions are deterministic: the noise of scene ``start + i`` depends only on (seed, start + i).
    """
    img = _chw(scenes.image)
    if task.input == "noisy":
        noise = np.stack([np.random.default_rng([int(seed), 7919, start + i]).normal(0, NOISE_SIGMA, img.shape[1:])
                          for i in range(len(img))]).astype(np.float32)
        img = np.clip(img + noise, 0.0, 1.0)
    elif task.input == "grey":
        grey = np.tensordot(np.array([0.299, 0.587, 0.114], np.float32), img, axes=([0], [1]))
        img = np.repeat(grey[:, None], 3, axis=1)
    elif task.input == "masked":
        img = img.copy()
        h = img.shape[-1]
        lo, hi = h * 5 // 16, h - h * 5 // 16
        img[:, :, lo:hi, lo:hi] = 0.5
    elif task.input != "clean":  # pragma: no cover - guarded by the registry
        raise DeparaError(f"task {task.name}: unknown input {task.input!r}, expected one of {INPUTS}")
    return (2.0 * img - 1.0).astype(np.float32)
