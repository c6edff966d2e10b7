"""Seeded procedural scenes: a Taskonomy in miniature, rendered with numpy.

Each scene is a small RGB image (32 px by default) of 1..``max_objects`` shaded objects of
``len(SHAPE_CLASSES)`` shape classes in front of a textured background, lit from one direction.
Objects overlap (a per-pixel depth test decides what is visible), so the scenes have occlusion
boundaries as well as texture edges. Alongside the image the renderer keeps every buffer the
task bank needs (depth, normals, shading, albedo, instance and class maps, keypoints, counts,
shape class, light direction), so ≥ 12 dense and global tasks share the same images.

Coordinates: x to the right, y down, z towards the viewer; normals are unit vectors in that frame.
Everything is deterministic in ``seed``; scene ``i`` depends only on ``(seed, i)``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from ...errors import DeparaError

SHAPE_CLASSES: tuple[str, ...] = ("sphere", "box", "cylinder", "pyramid")
AMBIENT = 0.25


@dataclass(frozen=True)
class SceneBatch:
    """Rendered scenes and their buffers (N scenes of H×W pixels, float32 unless stated).

    image:     N×H×W×3 in [0, 1]        the rendered photo
    albedo:    N×H×W×3 in [0, 1]        unshaded surface colour
    depth:     N×H×W in [0, 1]          distance from the viewer (background = 1)
    normals:   N×H×W×3 in [-1, 1]       surface normal (background faces the viewer)
    shading:   N×H×W in [0, 1]          Lambertian shading ambient + (1-ambient)·max(0, n·l)
    instance:  N×H×W int16              visible object id, 0 = background, 1.. in drawing order
    semantic:  N×H×W int16              visible shape class + 1, 0 = background
    occlusion_edges: N×H×W in {0, 1}    pixels where the visible object id changes (3D edges)
    image_edges:     N×H×W in [0, 1]    Sobel gradient magnitude of the grey image (2D edges)
    keypoints: N×H×W in [0, 1]          Gaussian bumps at the centres of visible objects
    count:     N int64                  number of visible objects (1..max_objects)
    shape:     N int64                  shape class of the largest visible object
    light:     N×3                      unit light direction (towards the light)
    """

    image: np.ndarray
    albedo: np.ndarray
    depth: np.ndarray
    normals: np.ndarray
    shading: np.ndarray
    instance: np.ndarray
    semantic: np.ndarray
    occlusion_edges: np.ndarray
    image_edges: np.ndarray
    keypoints: np.ndarray
    count: np.ndarray
    shape: np.ndarray
    light: np.ndarray

    def __len__(self) -> int:
        return int(self.image.shape[0])

    @property
    def size(self) -> int:
        return int(self.image.shape[1])

    def subset(self, index) -> "SceneBatch":
        """The scenes at ``index`` (slice or integer array) as a new batch."""
        return SceneBatch(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6.0) % 6
    f = h * 6.0 - int(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i], dtype=np.float32)


def _background(rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """A textured background: a random base colour modulated by oriented stripes and a smooth blotch field."""
    size = xx.shape[0]
    base = _hsv_to_rgb(rng.uniform(), rng.uniform(0.1, 0.5), rng.uniform(0.45, 0.85))
    theta = rng.uniform(0, np.pi)
    freq = rng.uniform(2.0, 6.0) * 2 * np.pi / size
    stripes = np.sin(freq * (np.cos(theta) * xx + np.sin(theta) * yy) + rng.uniform(0, 2 * np.pi))
    blotch = np.zeros_like(xx)
    for _ in range(3):
        cx, cy, s = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(0.15, 0.4) * size
        blotch += rng.uniform(-1, 1) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s))
    amp = rng.uniform(0.05, 0.2)
    tex = 1.0 + amp * stripes + 0.15 * blotch
    tint = _hsv_to_rgb(rng.uniform(), 0.3, 1.0)
    rgb = base[None, None, :] * tex[..., None]
    rgb = rgb * (0.8 + 0.2 * tint[None, None, :] * (stripes[..., None] > 0))
    return np.clip(rgb, 0.0, 1.0).astype(np.float32)


def _object_surface(cls: str, u: np.ndarray, v: np.ndarray, r: float):
    """Mask, normal (in rotated u,v frame) and relief height in [0, 1] of one object of radius ``r``."""
    nz = np.ones_like(u)
    nu = np.zeros_like(u)
    nv = np.zeros_like(u)
    if cls == "sphere":
        d2 = (u * u + v * v) / (r * r)
        mask = d2 < 1.0
        nz = np.sqrt(np.clip(1.0 - d2, 0.0, 1.0))
        nu, nv = u / r, v / r
        height = nz.copy()
    elif cls == "box":
        a = 0.8 * r
        mask = (np.abs(u) < a) & (np.abs(v) < a)
        # Bevelled box: a flat top face and four slanted rims, so each rim catches the light differently.
        t_u, t_v = np.abs(u) / a, np.abs(v) / a
        rim = np.maximum(t_u, t_v) > 0.65
        along_u = t_u >= t_v
        nu = np.where(rim & along_u, np.sign(u) * 0.8, 0.0)
        nv = np.where(rim & ~along_u, np.sign(v) * 0.8, 0.0)
        height = np.where(rim, 0.7, 1.0)
    elif cls == "cylinder":
        a, b = 0.55 * r, r
        mask = (np.abs(u) < a) & (np.abs(v) < b)
        cu = np.clip(u / a, -1.0, 1.0)
        nu = cu
        nz = np.sqrt(np.clip(1.0 - cu * cu, 0.0, 1.0))
        height = nz.copy()
    elif cls == "pyramid":
        mask = (np.abs(u) + np.abs(v)) < r
        nu = np.sign(u) * 0.9
        nv = np.sign(v) * 0.9
        height = np.clip(1.0 - (np.abs(u) + np.abs(v)) / r, 0.0, 1.0)
    else:  # pragma: no cover - guarded by SHAPE_CLASSES
        raise DeparaError(f"shape class {cls!r}: expected one of {', '.join(SHAPE_CLASSES)}")
    norm = np.sqrt(nu * nu + nv * nv + nz * nz)
    return mask, nu / norm, nv / norm, nz / norm, height


def _sobel_magnitude(grey: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude of an H×W image (edge-replicated border)."""
    p = np.pad(grey, 1, mode="edge")
    gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2] + p[2:, :-2])
    gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:])
    return np.sqrt(gx * gx + gy * gy)


def _label_boundaries(labels: np.ndarray) -> np.ndarray:
    """1 where a 4-neighbour carries a different label, else 0."""
    b = np.zeros(labels.shape, dtype=bool)
    b[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    b[:, :-1] |= labels[:, 1:] != labels[:, :-1]
    b[1:, :] |= labels[1:, :] != labels[:-1, :]
    b[:-1, :] |= labels[1:, :] != labels[:-1, :]
    return b.astype(np.float32)


def render_scene(seed: int, index: int, size: int = 32, max_objects: int = 4) -> dict[str, np.ndarray]:
    """Render scene ``index`` of the stream ``seed``; returns one scene's buffers (see :class:`SceneBatch`)."""
    rng = np.random.default_rng([int(seed), int(index)])
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5

    azimuth = rng.uniform(0, 2 * np.pi)
    elevation = rng.uniform(np.radians(25), np.radians(65))
    light = np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)],
                     dtype=np.float32)

    image_bg = _background(rng, xx, yy)
    albedo = image_bg.copy()
    depth = np.ones((size, size), np.float32)
    normals = np.zeros((size, size, 3), np.float32)
    normals[..., 2] = 1.0
    instance = np.zeros((size, size), np.int16)
    semantic = np.zeros((size, size), np.int16)

    n_obj = int(rng.integers(1, max_objects + 1))
    centres, classes = [], []
    for k in range(n_obj):
        cls_id = int(rng.integers(len(SHAPE_CLASSES)))
        cx, cy = rng.uniform(0.18, 0.82) * size, rng.uniform(0.18, 0.82) * size
        r = rng.uniform(0.14, 0.26) * size
        alpha = rng.uniform(0, np.pi / 2)
        z = rng.uniform(0.25, 0.85)
        colour = _hsv_to_rgb(rng.uniform(), rng.uniform(0.55, 1.0), rng.uniform(0.6, 1.0))
        ca, sa = np.cos(alpha), np.sin(alpha)
        u = ca * (xx - cx) + sa * (yy - cy)
        v = -sa * (xx - cx) + ca * (yy - cy)
        mask, nu, nv, nz, height = _object_surface(SHAPE_CLASSES[cls_id], u, v, r)
        obj_depth = z - 0.12 * height
        visible = mask & (obj_depth < depth)
        depth = np.where(visible, obj_depth, depth)
        normals[visible, 0] = (ca * nu - sa * nv)[visible]
        normals[visible, 1] = (sa * nu + ca * nv)[visible]
        normals[visible, 2] = nz[visible]
        albedo[visible] = colour
        instance[visible] = k + 1
        semantic[visible] = cls_id + 1
        centres.append((cx, cy))
        classes.append(cls_id)

    shading = AMBIENT + (1.0 - AMBIENT) * np.clip(normals @ light, 0.0, 1.0)
    image = np.clip(albedo * shading[..., None], 0.0, 1.0)

    ids, areas = np.unique(instance[instance > 0], return_counts=True)
    visible_ids = [int(i) for i, a in zip(ids, areas) if a >= 3]
    if not visible_ids:  # every object hidden: count the largest fragment anyway (never happens in practice)
        visible_ids = [int(ids[np.argmax(areas)])] if len(ids) else [1]
    largest = int(ids[np.argmax(areas)]) if len(ids) else 1
    keypoints = np.zeros((size, size), np.float32)
    for k in visible_ids:
        cx, cy = centres[k - 1]
        keypoints = np.maximum(keypoints, np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 1.5 ** 2)))

    grey = image @ np.array([0.299, 0.587, 0.114], np.float32)
    edges = np.clip(_sobel_magnitude(grey) / 2.0, 0.0, 1.0)
    return {
        "image": image.astype(np.float32), "albedo": albedo.astype(np.float32), "depth": depth.astype(np.float32),
        "normals": normals, "shading": shading.astype(np.float32), "instance": instance, "semantic": semantic,
        "occlusion_edges": _label_boundaries(instance), "image_edges": edges.astype(np.float32),
        "keypoints": keypoints, "count": np.int64(len(visible_ids)), "shape": np.int64(classes[largest - 1]),
        "light": light,
    }


def generate_scenes(n: int, *, size: int = 32, seed: int = 0, start: int = 0, max_objects: int = 4) -> SceneBatch:
    """Render scenes ``start .. start+n-1`` of stream ``seed`` (deterministic; see module docstring)."""
    if int(n) < 1:
        raise DeparaError(f"scene count n={n}: expected at least 1")
    if int(size) < 16:
        raise DeparaError(f"scene size={size}: expected at least 16 pixels")
    if int(max_objects) < 1:
        raise DeparaError(f"max_objects={max_objects}: expected at least 1")
    scenes = [render_scene(seed, start + i, size, max_objects) for i in range(int(n))]
    return SceneBatch(**{k: np.stack([s[k] for s in scenes]) for k in scenes[0]})
