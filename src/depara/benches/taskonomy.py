"""The Taskonomy model-selection experiment (docs/method.md §5) from the published per-task formats.

Layout read (one folder per task, names from ``tasks.txt``)::

    <features root>/<task>/task_feature.npy        N×D (or N×any) features of the task encoder on N probes
    <attributions root>/<task>/gradXinput.npy      N×H×W×C attribution maps (``--attribution-file``)

Arrays are opened memory-mapped (``np.load(mmap_mode="r", allow_pickle=False)``): a full-size attribution array is
1000×256×256×8 float32 = 2 GB per task, and :meth:`depara.core.graph.Graph.from_arrays` reduces it over channels in
chunks of probes, so only the N×H×W node maps (262 MB per task) are ever held. Each task's graph is built once and
cached as a graph file (keyed by the input files' size and modification time and the settings), so a second run
only reads the cache. The similarity step then holds every task's nodes at once (20 × N×H×W float32, about 5 GB at
full size).

Outputs (:func:`write_matrices`): the 20×20 matrices V (node similarity), E (edge similarity, Spearman of the
centred-cosine edges), RSA (Spearman of correlation edges on uncentred features, Dwivedi & Roig) and
DEPARA = V + λE, as labelled CSVs (rows = targets, columns = sources; all four are symmetric).

:func:`evaluate_matrices` scores them against the ground truth (``sort_gt`` or an affinity matrix) with
:mod:`depara.evaluation.rank_quality` and draws the figures of :mod:`depara.report.plots.ranking`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..evaluation import rank_quality as ev
from ..io.files import ensure_dir, write_csv, write_json
from ..errors import DeparaError, exception_reason
from ..core.graph import Graph
from ..evaluation.published import read_published_hits  # noqa: F401 - its documented place (tx.read_published_hits)
from ..core.similarity import edge_similarity_matrix, node_similarity_matrix, similarity_matrix
from ..report.manifest import writes_results_folder

FEATURE_FILE = "task_feature.npy"
ATTRIBUTION_FILE = "gradXinput.npy"
TASKS_FILE = "tasks.txt"
SORT_GT_FILES = ("sort_gt_18x20.csv", "sort_gt_18x20.npy", "sort_gt.csv", "sort_gt.npy")
MATRIX_FILES = {"V": "V.csv", "E": "E.csv", "RSA": "RSA.csv", "DEPARA": "DEPARA.csv"}
METHOD_LABELS = {"DEPARA": "DEPARA (V + λE)", "V": "DEPARA-V (nodes)", "E": "DEPARA-E (edges)", "RSA": "RSA"}
_CACHE_VERSION = "1"
# Above this many bytes of node maps over all tasks, V is computed from memory-mapped cached nodes.
IN_MEMORY_NODE_BYTES = 2 * 2**30


# --------------------------------------------------------------------------------------------------- readers
def read_tasks(path: str | os.PathLike) -> list[str]:
    """Task names, one per line (blank lines and ``#`` comments ignored), in the evaluation's order."""
    p = Path(path)
    if not p.is_file():
        raise DeparaError(f"{p}: task list not found")
    from ..io.readers import read_text_file

    names = [ln.strip() for ln in read_text_file(p, "task list").splitlines()]
    names = [n for n in names if n and not n.startswith("#")]
    if len(names) < 2:
        raise DeparaError(f"{p}: expected at least 2 task names, found {len(names)}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DeparaError(f"{p}: duplicate task names {dup}")
    return names


def resolve_tasks(features_root: str | os.PathLike, tasks_file: str | os.PathLike | None = None) -> list[str]:
    """The task order: ``tasks_file``, else ``<root>/tasks.txt``, else the sorted subfolders holding a feature file."""
    root = Path(features_root)
    if tasks_file is not None:
        return read_tasks(tasks_file)
    if (root / TASKS_FILE).is_file():
        return read_tasks(root / TASKS_FILE)
    if not root.is_dir():
        raise DeparaError(f"{root}: features folder not found")
    names = sorted(d.name for d in root.iterdir() if (d / FEATURE_FILE).is_file())
    if len(names) < 2:
        raise DeparaError(f"{root}: no {TASKS_FILE} and fewer than 2 task folders with {FEATURE_FILE}")
    return names


def open_array(path: str | os.PathLike, what: str = "array") -> np.ndarray:
    """Memory-map a ``.npy`` file (never unpickling); a one-line DeparaError names the file on any problem."""
    p = Path(path)
    if not p.is_file():
        raise DeparaError(f"{p}: {what} file not found")
    try:
        arr = np.load(p, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise DeparaError(f"{p}: not a plain numeric .npy array ({exception_reason(exc)})") from None
    except (OSError, EOFError) as exc:
        raise DeparaError(f"{p}: unreadable .npy file ({exception_reason(exc)})") from None
    if not isinstance(arr, np.ndarray):
        raise DeparaError(f"{p}: an .npz archive, expected a single .npy array")
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number)):
        raise DeparaError(f"{p}: expected a numeric array, got dtype {arr.dtype}")
    if arr.ndim < 2:
        raise DeparaError(f"{p}: expected N×... (one row per probe), got shape {arr.shape}")
    return arr


@dataclass(frozen=True)
class TaskFiles:
    """The input files of one task: ``features`` (N×D) and optional ``attributions`` (N×H×W×C)."""

    task: str
    features: Path
    attributions: Path | None


def locate_task_files(features_root: str | os.PathLike, tasks: Sequence[str], *,
                      attributions_root: str | os.PathLike | None = None,
                      attribution_file: str = ATTRIBUTION_FILE) -> list[TaskFiles]:
    """Find every task's files and check their shapes (headers only) agree on N.

    Attributions are looked up under ``attributions_root`` (required for every task when it is given) or, when it
    is not, beside the features; if no task has an attribution file there, the tasks are taken without
    attributions (E and RSA only). A task with some but not all files present is an error naming the file.
    """
    froot = Path(features_root)
    if not froot.is_dir():
        raise DeparaError(f"{froot}: features folder not found")
    aroot = Path(attributions_root) if attributions_root is not None else froot
    if attributions_root is not None and not aroot.is_dir():
        raise DeparaError(f"{aroot}: attributions folder not found")
    explicit = attributions_root is not None
    any_attr = explicit or any((froot / t / attribution_file).is_file() for t in tasks)
    out = []
    n_ref: tuple[int, str] | None = None
    for task in tasks:
        tdir = froot / task
        if not tdir.is_dir():
            raise DeparaError(f"{tdir}: folder of task {task} not found")
        fpath = tdir / FEATURE_FILE
        if not fpath.is_file():
            raise DeparaError(f"{fpath}: task {task} has no {FEATURE_FILE}")
        feat = open_array(fpath, f"task {task} features")
        if n_ref is None:
            n_ref = (feat.shape[0], str(fpath))
        elif feat.shape[0] != n_ref[0]:
            raise DeparaError(f"{fpath}: {feat.shape[0]} probes, but {n_ref[1]} has {n_ref[0]} "
                              "(every task must use the same probe set)")
        apath = None
        if any_attr:
            apath = aroot / task / attribution_file
            if not apath.is_file():
                raise DeparaError(f"{apath}: task {task} has no attribution file {attribution_file}")
            attr = open_array(apath, f"task {task} attributions")
            if attr.shape[0] != feat.shape[0]:
                raise DeparaError(f"{apath}: {attr.shape[0]} probes, but {fpath} has {feat.shape[0]}")
        out.append(TaskFiles(task, fpath, apath))
    return out


# ---------------------------------------------------------------------------------------------------- graphs
def _file_stamp(p: Path | None) -> list:
    if p is None:
        return [None]
    st = p.stat()
    return [str(p.resolve()), st.st_size, st.st_mtime_ns]


def _cache_path(cache_dir: Path, files: TaskFiles, kind: str, settings: Mapping) -> Path:
    key = json.dumps([_CACHE_VERSION, kind, _file_stamp(files.features), _file_stamp(files.attributions),
                      dict(settings)], sort_keys=True)
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    return cache_dir / f"{files.task}.{kind}.{digest}.safetensors"


def _cached_graph(path: Path, build: Callable[[], Graph]) -> tuple[Graph, bool]:
    """Load the graph at ``path``; build and save it when absent or unreadable (a corrupt entry is rebuilt)."""
    if path.is_file():
        try:
            return Graph.load(path), True
        except DeparaError:
            pass
    graph = build()
    graph.save(path)
    return graph, False


def _settings(channel_reduction: str, channel_axis: int = -1) -> dict:
    return {"channel_reduction": channel_reduction, "channel_axis": channel_axis}


def build_task_graphs(files: TaskFiles, *, cache_dir: str | os.PathLike, channel_reduction: str = "mean",
                      channel_axis: int = -1) -> tuple[Graph, Graph, bool]:
    """The DEPARA graph and the RSA graph of one task, from the cache or built once.

    DEPARA graph: nodes = attribution maps reduced over channels (signed mean, the Taskonomy setting), edges =
    cosine of the probe-centred features. Without attributions its nodes are the features (a placeholder: V is
    then not reported). RSA graph: edges = Pearson correlation of the uncentred features (nodes unused).

    Returns ``(depara_graph, rsa_graph, both_from_cache)``.
    """
    cache = ensure_dir(cache_dir)
    settings = _settings(channel_reduction, channel_axis)

    def _wrap(fn: Callable[[], Graph]) -> Callable[[], Graph]:
        def run() -> Graph:
            try:
                return fn()
            except DeparaError as exc:
                raise DeparaError(f"task {files.task} ({files.features.parent}): {exc}") from None
        return run

    def depara() -> Graph:
        feats = open_array(files.features, f"task {files.task} features")
        meta = {"model": f"taskonomy:{files.task}", "task": files.task, "source_features": str(files.features)}
        if files.attributions is None:
            meta["nodes"] = "features (placeholder: no attributions)"
            return Graph.from_arrays(feats, feats, center=True, edge="cosine", meta=meta)
        attr = open_array(files.attributions, f"task {files.task} attributions")
        meta.update(nodes="attributions", source_attributions=str(files.attributions), method="gradient_x_input")
        reduction = None if channel_reduction == "none" or attr.ndim < 4 else channel_reduction
        return Graph.from_arrays(attr, feats, center=True, edge="cosine", channel_reduction=reduction,
                                 channel_axis=channel_axis, meta=meta)

    def rsa() -> Graph:
        feats = open_array(files.features, f"task {files.task} features")
        meta = {"model": f"taskonomy:{files.task}", "task": files.task, "nodes": "features (unused: RSA)"}
        return Graph.from_arrays(feats, feats, center=False, edge="correlation", meta=meta)

    g_depara, hit1 = _cached_graph(_cache_path(cache, files, "depara", settings), _wrap(depara))
    g_rsa, hit2 = _cached_graph(_cache_path(cache, files, "rsa", {}), _wrap(rsa))
    return g_depara, g_rsa, hit1 and hit2


@dataclass(frozen=True)
class TaskonomyMatrices:
    """G×G task-by-task similarity matrices (float64, rows = targets, columns = sources).

    ``V`` is None when no attributions were given. ``DEPARA`` = V + lam·E (None without V).
    """

    names: tuple[str, ...]
    V: np.ndarray | None
    E: np.ndarray
    RSA: np.ndarray
    lam: float
    n_probes: int = 0

    @property
    def DEPARA(self) -> np.ndarray | None:  # noqa: N802 - the method's name
        return None if self.V is None else ev.combine(self.V, self.E, self.lam)

    def methods(self) -> dict[str, np.ndarray]:
        """Available score matrices by key (``DEPARA``, ``V``, ``E``, ``RSA``)."""
        out = {"DEPARA": self.DEPARA, "V": self.V, "E": self.E, "RSA": self.RSA}
        return {k: v for k, v in out.items() if v is not None}


def compute_matrices(features_root: str | os.PathLike, *, attributions_root: str | os.PathLike | None = None,
                     attribution_file: str = ATTRIBUTION_FILE, tasks_file: str | os.PathLike | None = None,
                     lam: float = 0.25, cache_dir: str | os.PathLike, channel_reduction: str = "mean",
                     progress: bool = True, max_node_bytes: int = IN_MEMORY_NODE_BYTES) -> TaskonomyMatrices:
    """Build (or read from ``cache_dir``) every task's graphs and compute V, E, RSA and DEPARA(λ).

    When all tasks' nodes together fit in ``max_node_bytes`` the graphs are held and compared with
    :func:`depara.core.similarity.similarity_matrix`; otherwise each graph is dropped once built and V is computed
    by :func:`depara.core.similarity.node_similarity_matrix` over the nodes memory-mapped from the cached graph files
    (probe chunks), so memory stays at about one task's graph whatever the number of tasks. Same numbers.
    """
    if not np.isfinite(lam):
        raise DeparaError(f"lam={lam}: expected a finite number")
    if channel_reduction not in ("mean", "abs_mean", "none"):
        raise DeparaError(f"channel_reduction={channel_reduction!r}: expected mean, abs_mean or none")
    tasks = resolve_tasks(features_root, tasks_file)
    files = locate_task_files(features_root, tasks, attributions_root=attributions_root,
                              attribution_file=attribution_file)
    has_attr = files[0].attributions is not None
    node_bytes = len(files) * _node_bytes(files[0], channel_reduction) if has_attr else 0
    in_memory = node_bytes <= max_node_bytes
    depara_graphs: dict[str, Graph] = {}
    node_maps: list[np.ndarray] = []
    edges: list[np.ndarray] = []
    rsa_edges: list[np.ndarray] = []
    probe_ids = None
    for f in _progress(files, progress, "task graphs"):
        g, r, _ = build_task_graphs(f, cache_dir=cache_dir, channel_reduction=channel_reduction)
        if probe_ids is None:
            probe_ids = g.probe_ids
        elif g.probe_ids != probe_ids or r.probe_ids != probe_ids:
            raise DeparaError(f"task {f.task}: cached graph has other probe ids than task {files[0].task}")
        rsa_edges.append(r.edges)
        if in_memory:
            depara_graphs[f.task] = g
        else:
            edges.append(g.edges)
            node_maps.append(_memmap_nodes(_cache_path(Path(cache_dir), f, "depara",
                                                       _settings(channel_reduction))))
        del g, r
    rsa = edge_similarity_matrix(rsa_edges, names=tasks)
    if in_memory:
        sims = similarity_matrix(depara_graphs, lam=lam)
        v, e = sims.V, sims.E
    else:
        v = node_similarity_matrix(node_maps, names=tasks) if has_attr else None
        e = edge_similarity_matrix(edges, names=tasks)
    return TaskonomyMatrices(tuple(tasks), v if has_attr else None, e, rsa, float(lam),
                             n_probes=len(probe_ids or ()))


def _node_bytes(files: TaskFiles, channel_reduction: str) -> int:
    """float32 bytes of one task's nodes, from the attribution file's header."""
    shape = open_array(files.attributions).shape
    size = int(np.prod(shape, dtype=np.int64))
    if len(shape) >= 4 and channel_reduction != "none":
        size //= shape[-1]
    return 4 * size


def _memmap_nodes(path: Path) -> np.ndarray:
    """The ``nodes`` tensor of a saved graph, memory-mapped from its safetensors file (read-only, no copy).

    safetensors layout: 8-byte little-endian header length, JSON header (dtype, shape, data offsets relative to
    the end of the header), raw little-endian data. Anything unexpected falls back to loading the graph.
    """
    try:
        with open(path, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(n))
        info = header["nodes"]
        if info["dtype"] != "F32" or len(info["shape"]) != 2:
            raise ValueError(info["dtype"])
        begin, stop = info["data_offsets"]
        shape = tuple(int(x) for x in info["shape"])
        if stop - begin != 4 * shape[0] * shape[1]:
            raise ValueError("size")
        return np.memmap(path, dtype="<f4", mode="r", offset=8 + n + begin, shape=shape)
    except (OSError, ValueError, KeyError, TypeError):
        return Graph.load(path).nodes


def _progress(items, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="task")


def write_matrices(m: TaskonomyMatrices, out_dir: str | os.PathLike) -> dict[str, str]:
    """Write each available matrix as ``<key>.csv`` plus ``matrices.json`` (λ, tasks, files); returns key → file."""
    out = ensure_dir(out_dir)
    files = {}
    for key, mat in m.methods().items():
        ev.write_matrix_csv(out / MATRIX_FILES[key], m.names, mat)
        files[key] = MATRIX_FILES[key]
    write_json(out / "matrices.json", {"lam": m.lam, "tasks": list(m.names), "n_probes": m.n_probes,
                                       "files": files})
    return files


@writes_results_folder("out_dir", keep=("cache",))  # written whole; the default cache stays
def write_matrices_results(m: TaskonomyMatrices, out_dir: str | os.PathLike, *,
                           settings: Mapping[str, object] | None = None) -> dict[str, object]:
    """A ``taskonomy`` results folder of computed matrices: the CSVs (:func:`write_matrices`), the similarity
    heatmap and task tree of DEPARA (E when there are no attributions), and ``manifest.json``.

    Returns ``{"files": key → CSV, "summary": one line, "note": why V/DEPARA are missing (or "")}``.
    """
    from ..report.manifest import write_manifest
    from ..report.plots.ranking import draw_tree

    out = ensure_dir(out_dir)
    files = write_matrices(m, out)
    key = "DEPARA" if m.V is not None else "E"
    draw_tree(m.names, m.methods()[key], out / "task_tree.png",
              title=f"Task similarity tree ({METHOD_LABELS[key]}, average linkage)",
              heatmap=out / "similarity_heatmap.png", heatmap_title=f"Task similarity ({METHOD_LABELS[key]})")
    note = "" if m.V is not None else " (no attributions: V and DEPARA not computed)"
    summary = f"{len(m.names)} tasks, {m.n_probes} probes: wrote {', '.join(files.values())}{note}"
    write_manifest(out, "taskonomy", title="Taskonomy task similarity matrices", summary=summary,
                   settings=dict(settings or {}), tables=dict(files),
                   figures={"similarity_heatmap": "similarity_heatmap.png", "task_tree": "task_tree.png"},
                   extra={"tasks": list(m.names), "lam": m.lam, "n_probes": m.n_probes})
    return {"files": files, "summary": summary, "note": note}


def read_matrices(matrices_dir: str | os.PathLike) -> TaskonomyMatrices:
    """Read what :func:`write_matrices` wrote (E and RSA required; V optional; λ from ``matrices.json``)."""
    d = Path(matrices_dir)
    if not d.is_dir():
        raise DeparaError(f"{d}: matrices folder not found")
    info = {}
    if (d / "matrices.json").is_file():
        from ..io.files import read_json

        info = read_json(d / "matrices.json")
    loaded = {}
    for key in ("V", "E", "RSA"):
        p = d / MATRIX_FILES[key]
        if p.is_file():
            loaded[key] = ev.read_matrix_csv(p)
    for key in ("E", "RSA"):
        if key not in loaded:
            raise DeparaError(f"{d / MATRIX_FILES[key]}: matrix file not found (run `depara taskonomy matrices`)")
    names = loaded["E"][0]
    mats = {k: ev.align_matrix(v, n, names, f"{d / MATRIX_FILES[k]}") for k, (n, v) in loaded.items()}
    for k, v in mats.items():
        off = ~np.eye(len(names), dtype=bool)
        if not np.all(np.isfinite(v[off])):
            raise DeparaError(f"{d / MATRIX_FILES[k]}: missing or non-finite off-diagonal values")
    lam = float(info.get("lam", 0.25))
    return TaskonomyMatrices(names, mats.get("V"), mats["E"], mats["RSA"], lam, int(info.get("n_probes", 0)))


# ------------------------------------------------------------------------------------------- truth / published
def load_truth(path: str | os.PathLike) -> tuple[tuple[str, ...], np.ndarray]:
    """Ground truth as ``(names, truth)``.

    ``path`` is either a folder holding ``tasks.txt`` and a ``sort_gt`` file (csv or npy: rows ``[target,
    sources by descending affinity...]``, task indices into tasks.txt), or a labelled matrix CSV (e.g.
    ``affinity_16k_target_by_source.csv``; rows = targets, columns = sources, empty rows = source-only tasks).
    """
    p = Path(path)
    if p.is_file():
        return ev.read_matrix_csv(p)
    if not p.is_dir():
        raise DeparaError(f"{p}: truth folder or matrix file not found")
    names = read_tasks(p / TASKS_FILE)
    for fname in SORT_GT_FILES:
        f = p / fname
        if f.is_file():
            if f.suffix == ".npy":
                rows = open_array(f, "sort_gt")
            else:
                try:
                    rows = np.loadtxt(f, delimiter=",", ndmin=2)
                except ValueError as exc:
                    raise DeparaError(f"{f}: not a numeric CSV ({exception_reason(exc)})") from None
            try:
                return tuple(names), ev.truth_from_sort_gt(np.asarray(rows), n_tasks=len(names))
            except DeparaError as exc:
                raise DeparaError(f"{f}: {exc}") from None
    raise DeparaError(f"{p}: no sort_gt file ({', '.join(SORT_GT_FILES)})")


def published_method_key(label: str) -> str | None:
    """Map a published method label (e.g. ``DEPARA(V+0.25E)``, ``DEPARA-V(...)``) to DEPARA / V / E / RSA."""
    low = label.lower().replace(" ", "")
    if low.startswith("depara-v"):
        return "V"
    if low.startswith("depara-e"):
        return "E"
    if low.startswith("depara"):
        return "DEPARA"
    if low.startswith("rsa"):
        return "RSA"
    return None


# ------------------------------------------------------------------------------------------------ evaluation
DEFAULT_LAMBDAS = tuple(float(x) for x in np.concatenate([[0.0], np.logspace(-3, 1, 33)]))


def _method_tables(matrices: TaskonomyMatrices, truth: np.ndarray, names: Sequence[str], relevant: int, out: Path
                   ) -> tuple[dict[str, "ev.RankingCurve"], list[dict], dict[str, str]]:
    """Each method's P@K curve and rank correlations, written as ``pk_<method>.csv``, ``rank_correlations.csv``
    and ``summary.csv`` into ``out``. Returns (curves by method key, summary rows, the tables written)."""
    curves: dict[str, ev.RankingCurve] = {}
    corr_rows, summary_rows, tables = [], [], {}
    for key, scores in matrices.methods().items():
        curve = ev.precision_recall_at_k(scores, truth, relevant, names=names)
        corr = ev.rank_correlations(scores, truth, names=names)
        curves[key] = curve
        fname = f"pk_{key}.csv"
        write_csv(out / fname, curve.rows(METHOD_LABELS[key]))
        tables[f"pk_{key}"] = fname
        corr_rows += corr.rows(METHOD_LABELS[key])
        row = {"method": METHOD_LABELS[key]}
        for k in (1, 3, 5):
            if k <= curve.n_candidates:
                row[f"P@{k}"] = curve.at(k)[1]
        row.update({f"mean_{n}": v for n, v in corr.mean.items() if n != "n_targets"})
        summary_rows.append(row)
    write_csv(out / "rank_correlations.csv", corr_rows)
    write_csv(out / "summary.csv", summary_rows)
    tables.update(rank_correlations="rank_correlations.csv", summary="summary.csv")
    return curves, summary_rows, tables


def _published_points(published: Mapping[str, tuple[np.ndarray, np.ndarray]] | None, curves: Mapping[str, Any],
                      n_t: int, n_c: int, relevant: int) -> dict[str, dict]:
    """The published curves as figure points (K within 1..n_c), each matched to the method it reports."""
    pub_points = {}
    for pub_label, (ks, hits) in (published or {}).items():
        ok = (ks >= 1) & (ks <= n_c)
        pts = ev_points(ks[ok], hits[ok], n_t, relevant)
        key = published_method_key(pub_label)
        if key in curves:
            pts["match"] = METHOD_LABELS[key]
        pub_points[f"{pub_label} (published)"] = pts
    return pub_points


@writes_results_folder("out_dir")  # written whole: an interrupted run leaves the previous folder
def evaluate_matrices(matrices: TaskonomyMatrices, truth_names: Sequence[str], truth: np.ndarray,
                      out_dir: str | os.PathLike, *, relevant: int = 5,
                      published: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
                      lambdas: Sequence[float] = DEFAULT_LAMBDAS, tree_method: str = "average",
                      settings: Mapping | None = None, label: str = "") -> dict:
    """Score every available method against the truth; write CSVs, figures and ``manifest.json`` into ``out_dir``.

    ``label`` (e.g. "test-scale synthetic data") is prepended to every figure title.

    Returns the manifest's content (as a dict) plus ``curves`` (method key → RankingCurve).
    """
    from ..report.plots import ranking as plots
    from ..report.manifest import write_manifest

    from ..core.tree import check_linkage_method
    from ..report.plots.ranking import draw_tree

    check_linkage_method(tree_method)
    names = matrices.names
    truth = ev.align_matrix(truth, truth_names, names, "truth")
    out = ensure_dir(out_dir)
    curves, summary_rows, tables = _method_tables(matrices, truth, names, relevant, out)
    first = next(iter(curves.values()))
    n_t, n_c = first.n_targets, first.n_candidates
    labelled = {METHOD_LABELS[k]: c for k, c in curves.items()}
    pub_points = _published_points(published, curves, n_t, n_c, relevant)
    figures = {}
    pre = f"[{label}] " if label else ""
    plots.plot_pr_curve(labelled, out / "pr_curve.png", published=pub_points,
                        title=f"{pre}Taskonomy model selection: precision-recall ({n_t} targets, "
                              f"top-{relevant} relevant)")
    plots.plot_precision_at_k(labelled, out / "precision_at_k.png", published=pub_points,
                              title=f"{pre}Taskonomy model selection: precision at K")
    figures.update(pr_curve="pr_curve.png", precision_at_k="precision_at_k.png")
    sweep = None
    if matrices.V is not None:
        sweep = lambda_sweep(matrices.V, matrices.E, truth, names, lambdas, relevant)
        write_csv(out / "lambda_sweep.csv", sweep)
        tables["lambda_sweep"] = "lambda_sweep.csv"
        plots.plot_lambda_sweep(sweep, out / "lambda_sweep.png", chosen=matrices.lam,
                                title=f"{pre}DEPARA score V + λE: sensitivity to λ")
        figures["lambda_sweep"] = "lambda_sweep.png"
    tree_key = "DEPARA" if "DEPARA" in curves else "E"
    draw_tree(names, matrices.methods()[tree_key], out / "task_tree.png", method=tree_method,
              title=f"{pre}Task similarity tree ({METHOD_LABELS[tree_key]}, {tree_method} linkage)",
              heatmap=out / "similarity_heatmap.png", heatmap_title=f"{pre}Task similarity ({METHOD_LABELS[tree_key]})")
    figures.update(task_tree="task_tree.png", similarity_heatmap="similarity_heatmap.png")
    best = max(summary_rows, key=lambda r: (r.get("P@5", 0.0), r.get("P@1", 0.0)))
    main = summary_rows[0]
    summary = (f"{main['method']} P@1={main.get('P@1', float('nan')):.3f} P@5={main.get('P@5', float('nan')):.3f}"
               f" (random {relevant / n_c:.3f}); best at P@5: {best['method']}")
    extra = {"lam": matrices.lam, "tasks": list(names), "n_targets": n_t, "relevant": relevant,
             "p_at_k": {k: {"K": c.k.tolist(), "hits": c.hits.tolist(), "precision": c.precision.tolist()}
                        for k, c in curves.items()}}
    if sweep:
        bestlam = max(sweep, key=lambda r: (r.get("P@5", 0.0), r.get("P@1", 0.0)))
        extra["best_lambda_at_P@5"] = bestlam["lambda"]
    write_manifest(out, "taskonomy", title="Taskonomy model selection (DEPARA paper protocol)", summary=summary,
                   settings={"relevant": relevant, "lam": matrices.lam, "tree_method": tree_method,
                             "label": label, **dict(settings or {})},
                   tables=tables, figures=figures, extra=extra)
    return {"summary": summary, "tables": tables, "figures": figures, "curves": curves, "extra": extra}


def ev_points(ks: np.ndarray, hits: np.ndarray, n_targets: int, relevant: int) -> dict:
    """Published hits(K) → precision/recall points ``{"K", "precision", "recall"}``."""
    ks = np.asarray(ks, dtype=np.float64)
    hits = np.asarray(hits, dtype=np.float64)
    return {"K": ks, "precision": hits / (n_targets * ks), "recall": hits / (n_targets * relevant)}


def lambda_sweep(V: np.ndarray, E: np.ndarray, truth: np.ndarray, names: Sequence[str],  # noqa: N803
                 lambdas: Sequence[float], relevant: int = 5) -> list[dict]:
    """P@1, P@3, P@5 and mean Spearman of V + λE for each λ (one row per λ)."""
    rows = []
    n_c = len(names) - 1
    for lam in lambdas:
        s = ev.combine(V, E, lam)
        c = ev.precision_recall_at_k(s, truth, min(relevant, n_c), names=names)
        corr = ev.rank_correlations(s, truth, names=names)
        row = {"lambda": float(lam)}
        for k in (1, 3, 5):
            if k <= n_c:
                row[f"P@{k}"] = c.at(k)[1]
        row["mean_spearman"] = corr.mean["spearman"]
        rows.append(row)
    return rows
