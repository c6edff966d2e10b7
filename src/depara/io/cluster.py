"""The Ray cluster, for the engines that fan work out over it (graph extraction, blocked similarity matrices,
``depara select --engine ray``): importing Ray with an install hint, connecting (a private runtime or a
HOST:PORT cluster, checked to answer first), and checking that every node sees a shared folder.

Ray is optional (the ``ray`` extra); nothing here imports it until a function is called.
"""

from __future__ import annotations

import secrets
import socket
from pathlib import Path

from ..errors import DeparaError, exception_reason

__all__ = ["RAY_INSTALL", "CONNECT_TIMEOUT_S", "import_ray", "check_address", "connect", "check_shared_store",
           "check_marker"]

RAY_INSTALL = 'pip install -e ".[ray]"'
#: Seconds allowed for a TCP connection to a HOST:PORT Ray address before it is reported unreachable.
CONNECT_TIMEOUT_S = 5.0
_MARKER_PREFIX = ".depara-shared-"


def import_ray():
    """The ``ray`` module, or a DeparaError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise DeparaError(f"engine='ray': Ray is not installed; install the extra with {RAY_INSTALL} "
                          "(or pip install 'ray[default]')") from None
    return ray


def check_address(address: str) -> None:
    """Fail fast (one line) when a HOST:PORT address does not answer, instead of Ray's long connect loop."""
    if address == "auto":
        return
    hostport = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise DeparaError(f"address: expected 'auto' or HOST:PORT of a Ray cluster (e.g. 10.0.0.5:6379), got "
                          f"{address!r}")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise DeparaError(f"address {address!r}: no Ray cluster reachable at {host}:{port} "
                          f"({exc.strerror or type(exc).__name__}); start one with `ray start --head` there, or "
                          "check the host and port") from None


def connect(address: str | None = None, num_workers: int | None = None) -> bool:
    """Initialise Ray for the engine; True when this call started it (the caller then shuts it down).

    See :func:`extract_graphs` for ``address`` and ``num_workers``.
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    if address is None:
        if num_workers is not None and (not isinstance(num_workers, int) or num_workers < 1):
            raise DeparaError(f"num_workers: expected a positive integer, got {num_workers!r}")
        ray.init(num_cpus=num_workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
        return True
    if not isinstance(address, str) or not address:
        raise DeparaError(f"address: expected 'auto' or HOST:PORT, got {address!r}")
    if num_workers is not None:
        raise DeparaError("num_workers: only for the private runtime (address=None); a cluster has its own CPUs")
    check_address(address)
    try:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DeparaError(f"address {address!r}: cannot connect to a Ray cluster ({first})") from None
    return True


def check_marker(root: Path, token: str) -> None:
    """On a Ray node: DeparaError naming the node when the marker file of a shared-store check is not in ``root``."""
    if not (Path(root) / f"{_MARKER_PREFIX}{token}").is_file():
        raise DeparaError(f"store {root}: not visible from Ray node {socket.gethostname()} "
                          f"({_node_ip()}); put the store on a filesystem every node mounts at the same path")


def _node_ip() -> str:
    try:
        import ray

        return ray.util.get_node_ip_address()
    except Exception:  # noqa: BLE001 - only for the message
        return "?"


def check_shared_store(root: Path, token: str | None = None) -> None:
    """Check that every alive Ray node sees ``root``: write a marker, look for it with one task per node.

    Raises a one-line DeparaError naming the first node that does not see it.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    token = token or secrets.token_hex(8)
    marker = root / f"{_MARKER_PREFIX}{token}"
    marker.write_text("depara engine: shared-store check\n")
    try:
        probe = ray.remote(num_cpus=0, max_retries=0)(check_marker)
        refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                .remote(root, token) for n in ray.nodes() if n.get("Alive")]
        try:
            ray.get(refs)
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if isinstance(getattr(exc, "cause", None), DeparaError) else None
            raise DeparaError(str(cause) if cause else exception_reason(exc, None)) from None
    finally:
        marker.unlink(missing_ok=True)
