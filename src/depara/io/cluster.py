"""The Ray cluster, for the engines that fan work out over it (graph extraction, blocked similarity matrices,
``depara select --engine ray``): importing Ray with an install hint, connecting (a private runtime or a
HOST:PORT cluster, checked to answer first), and checking that every node sees a shared folder.

Ray is optional (the ``ray`` extra); nothing here imports it until a function is called.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from pathlib import Path

from ..errors import DeparaError, exception_reason

__all__ = ["RAY_INSTALL", "CONNECT_TIMEOUT_S", "import_ray", "check_address", "connect", "check_shared_store",
           "check_marker"]

RAY_INSTALL = 'pip install -e ".[ray]"'
#: Seconds allowed for a HOST:PORT Ray address to accept a connection and answer as a Ray cluster.
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


#: What a client sends first on an HTTP/2 connection (RFC 9113 §3.4): the preface, then an empty SETTINGS frame.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def check_address(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast, in one line, unless ``address`` answers as a Ray cluster: within ``timeout`` seconds in all.

    ``auto`` is left to Ray (it reads the local cluster's address file and fails at once without one). For
    ``HOST:PORT`` / ``ray://HOST:PORT`` the port must accept a TCP connection and answer an HTTP/2 preface with
    a SETTINGS frame, as the gRPC servers of a Ray head (GCS, default port 6379) and of the Ray client server
    (``ray://``, port 10001) do. So a closed port, a host that drops packets, and a listener that accepts but is
    not Ray (silent, or speaking another protocol) all fail here, before ``ray.init`` (whose own connection loop
    waits far longer). With ``RAY_USE_TLS`` set, only the TCP connection is checked (the answer is encrypted).
    """
    if address == "auto":
        return
    hostport = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise DeparaError(f"address: expected 'auto' or HOST:PORT of a Ray cluster (e.g. 10.0.0.5:6379), got "
                          f"{address!r}")
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as sock:
            if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
                return
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            sock.sendall(_H2_PREFACE)
            head = b""
            while len(head) < 9:  # the first frame's header: length (3), type (1), flags (1), stream (4)
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = sock.recv(9 - len(head))
                if not chunk:
                    break
                head += chunk
    except socket.timeout:
        raise DeparaError(f"address {address!r}: {host}:{port} did not answer as a Ray cluster within {timeout:g} s "
                          "(is it the Ray head's port, 6379 by default, or ray://HOST:10001?)") from None
    except OSError as exc:
        raise DeparaError(f"address {address!r}: no Ray cluster reachable at {host}:{port} "
                          f"({exc.strerror or type(exc).__name__}); start one with `ray start --head` there, or "
                          "check the host and port") from None
    if len(head) < 9 or head[3] != 0x04 or head[5:9] != b"\x00\x00\x00\x00":
        raise DeparaError(f"address {address!r}: {host}:{port} is not a Ray cluster (it does not answer as a gRPC "
                          "server); check the host and port (the Ray head's port is 6379 by default)")


def connect(address: str | None = None, num_workers: int | None = None) -> bool:
    """Initialise Ray for the engine; True when this call started it (the caller then shuts it down).

    See :func:`extract_graphs` for ``address`` and ``num_workers``.
    """
    if isinstance(address, str) and address and num_workers is None:
        check_address(address)  # before Ray is imported: a wrong address fails in seconds, Ray or not
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
    try:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        raise DeparaError(f"address {address!r}: cannot connect to a Ray cluster ({exception_reason(exc)})") from None
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
