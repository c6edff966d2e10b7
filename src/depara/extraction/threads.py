"""One context manager for the CPU threads of a long run: torch's and numpy's BLAS, restored afterwards."""

from __future__ import annotations

import contextlib
from typing import Iterator

from ..errors import DeparaError


@contextlib.contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """Run the body with ``threads`` torch and BLAS threads (None = leave both as they are).

    On shared cores extra threads mostly spin: numpy's BLAS busy-waits (LogME's eigh, rank correlations) and can
    make a scoring step an order of magnitude slower, so the benchmarks pin both.
    """
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise DeparaError(f"threads={threads!r}: expected a positive integer or None")
    if threads is None:
        yield
        return
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(before)
