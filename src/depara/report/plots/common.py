"""What every figure module shares: saving a matplotlib figure atomically as PNG and closing it."""

from __future__ import annotations

import os
from pathlib import Path

from ...io.files import atomic_path


def save_figure(fig, path: str | os.PathLike, *, dpi: int = 130, tight: bool = True) -> Path:
    """Write ``fig`` to ``path`` as PNG (temporary file, then rename) and close it, even on error."""
    import matplotlib.pyplot as plt

    p = Path(path)
    try:
        with atomic_path(p, "figure") as tmp:
            fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    finally:
        plt.close(fig)
    return p
