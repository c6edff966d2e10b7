"""Cost of the store's read verification: one 256 MiB float32 array read with and without its SHA-256 check.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_store_verify.py   # prints two lines, with the load

Best of 3 reads each (the file is in the page cache after the write, so the plain read is a memory copy and the
difference is the digest). The store reads an entry once and hashes the bytes it loads; "hash, then load" is the
two-read way it used before (``sha256_file`` then ``np.load``), timed in the same run for the ratio.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from depara.extraction.store import GraphStore
from depara.io.files import sha256_file


def best(fn, n: int = 3) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="depara-bench-store-"))
    try:
        store = GraphStore(folder)
        key = store.key("w", "layer", "probes", {}, kind="pooled")
        store.put_array(key, np.random.default_rng(0).standard_normal((8192, 8192), dtype=np.float32))
        verified = best(lambda: store.get_array(key))
        verified_mmap = best(lambda: store.get_array(key, mmap=True))
        plain = best(lambda: np.load(store.path(key)))
        two_reads = best(lambda: (sha256_file(store.path(key)), np.load(store.path(key))))
        load = os.getloadavg()[0]
        print(f"256 MiB entry: verified get {verified:.2f} s, verified mmap get {verified_mmap:.2f} s, plain np.load "
              f"{plain:.2f} s, hash-then-load (two reads) {two_reads:.2f} s (load average {load:.1f}, "
              f"{os.cpu_count()} CPUs)")
        print(f"verified get / hash-then-load = {verified / two_reads:.2f}; verified get / plain np.load = "
              f"{verified / plain:.1f}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
