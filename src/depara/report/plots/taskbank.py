"""Figures of the task-bank benchmark: node definitions compared, and methods across probe sets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .common import save_figure  # noqa: E402
from ...errors import DeparaError  # noqa: E402


_save = save_figure  # PNG, written atomically, figure closed


def plot_node_options(rows: Sequence[Mapping], out: str | os.PathLike, *, relevant: int = 5) -> Path:
    """Grouped bars: per node definition (x) and probe set (colour), DEPARA-V's mean per-target Spearman with
    the measured affinities (left) and DEPARA-V's P@relevant (right); DEPARA-E drawn as a dashed reference."""
    if not rows:
        raise DeparaError("plot_node_options: no rows given")
    options = list(dict.fromkeys(r["node"] for r in rows))
    probes = list(dict.fromkeys(r["probe_set"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    width = 0.8 / len(probes)
    for ax, key, ekey, label in ((axes[0], "V_mean_spearman", "E_mean_spearman", "mean Spearman with truth"),
                                 (axes[1], f"V_P@{relevant}", f"E_P@{relevant}", f"P@{relevant}")):
        for j, probe in enumerate(probes):
            vals = [next((r[key] for r in rows if r["node"] == o and r["probe_set"] == probe), np.nan)
                    for o in options]
            bars = ax.bar(np.arange(len(options)) + (j - (len(probes) - 1) / 2) * width, vals, width, label=probe)
            e = next(r[ekey] for r in rows if r["probe_set"] == probe)
            ax.axhline(e, color=bars.patches[0].get_facecolor(), ls="--", lw=1)
        ax.set_xticks(np.arange(len(options)), options, rotation=20)
        ax.set_xlabel("node definition (scalar / channel reduction)")
        ax.set_ylabel(f"DEPARA-V {label}")
        ax.axhline(0, color="0.3", lw=0.8)
    axes[0].set_title("Node signal (dashed: DEPARA-E on the same probe set)")
    axes[1].set_title(f"DEPARA-V top-{relevant} precision")
    axes[1].legend(title="probe set", fontsize=8)
    fig.tight_layout()
    return _save(fig, out)


def plot_probe_sets(rows: Sequence[Mapping], out: str | os.PathLike, *, relevant: int = 5) -> Path:
    """Bars of P@relevant per method (x) and probe set (colour), from ``summary.csv`` rows."""
    if not rows:
        raise DeparaError("plot_probe_sets: no rows given")
    methods = list(dict.fromkeys(r["method"] for r in rows))
    probes = list(dict.fromkeys(r["probe_set"] for r in rows))
    key = f"P@{relevant}"
    fig, ax = plt.subplots(figsize=(max(8, 1.3 * len(methods)), 4.4))
    width = 0.8 / len(probes)
    for j, probe in enumerate(probes):
        vals = [next((r[key] for r in rows if r["method"] == m and r["probe_set"] == probe), np.nan)
                for m in methods]
        ax.bar(np.arange(len(methods)) + (j - (len(probes) - 1) / 2) * width, vals, width, label=probe)
    ax.set_xticks(np.arange(len(methods)), [m.replace(" (", "\n(").replace(", ", ",\n") for m in methods], fontsize=7)
    ax.set_ylabel(f"P@{relevant} (share of measured top-{relevant} found)")
    ax.set_title("Task bank: robustness across probe sets")
    ax.legend(title="probe set", fontsize=8)
    ax.set_ylim(0, 1)
    fig.tight_layout()
    return _save(fig, out)
