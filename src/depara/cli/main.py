"""Entry point of the `depara` command: registers every command module and turns bad input into one line."""

from __future__ import annotations

import logging
import sys

from ..errors import DeparaError
from .app import app

# Importing a command module registers its commands on `app` (or a sub-app).
from . import core as _core  # noqa: F401,E402  layers, extract
from . import graphs as _graphs  # noqa: F401,E402  compare, rank
from . import taskonomy as _taskonomy  # noqa: F401,E402  taskonomy matrices/plot, tree
from . import score as _score  # noqa: F401,E402  score
from . import layers as _layers  # noqa: F401,E402  data split/shrink/synth-digits, train, transfer, layers-select, demo layers
from . import bench as _bench  # noqa: F401,E402  bench taskbank
from . import report as _report  # noqa: F401,E402  report, demo
from . import select as _select  # noqa: F401,E402  select
from . import cache as _cache  # noqa: F401,E402  cache info/clear


def _os_error(exc: OSError) -> str:
    """``<what>: <where>`` of an OSError (e.g. ``Permission denied: out/ranking.csv``)."""
    what = exc.strerror or type(exc).__name__
    where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
    return f"{what}: {where}" if where else f"{what} ({exc})" if str(exc) and str(exc) != what else what


class _StderrHandler(logging.StreamHandler):
    """Notes of the library (``depara.*`` loggers, WARNING and up) as plain lines on the *current* stderr."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))
        self.setLevel(logging.WARNING)

    @property
    def stream(self):  # resolved at each message, so a replaced sys.stderr (tests, redirections) is honoured
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; ignored
        pass


def _show_library_notes() -> None:
    logger = logging.getLogger("depara")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        logger.addHandler(_StderrHandler())


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _usage_line(exc: Exception) -> str:
    """A click usage error (bad option value, missing option, unknown option) as one line:
    ``invalid value for '--seed': 'abc' is not a valid integer (see 'depara select --help')``."""
    fmt = getattr(exc, "format_message", None)
    text = _one_line(fmt() if callable(fmt) else exc).rstrip(".")
    if text[:1].isupper() and not text[:2].isupper():
        text = text[0].lower() + text[1:]
    ctx = getattr(exc, "ctx", None)
    path = getattr(ctx, "command_path", None) if ctx is not None else None
    return f"{text} (see '{path} --help')" if path else text


def _other_failure(exc: Exception, interrupted: bool) -> int:
    """The exit code (and the one line on stderr) of any other exception: a click usage error, click's Exit /
    Abort, or a bug (``internal error``; the traceback with ``DEPARA_DEBUG=1``)."""
    import os

    name = type(exc).__name__
    if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # ClickException / UsageError / BadParameter
        # One line like every other bad input (click's own box is 3+ lines): what was wrong, and where
        # to read the usage of the command that refused it.
        print(f"error: {_usage_line(exc)}", file=sys.stderr)
        return int(exc.exit_code) or 2
    if name == "Exit" and hasattr(exc, "exit_code"):
        if interrupted:
            print("interrupted", file=sys.stderr)
            return 130
        return int(exc.exit_code)
    if name == "Abort":
        if interrupted or isinstance(exc.__context__, KeyboardInterrupt):
            print("interrupted", file=sys.stderr)
            return 130
        print("aborted", file=sys.stderr)
        return 1
    if os.environ.get("DEPARA_DEBUG"):
        raise
    print(f"error: internal error ({name}: {_one_line(exc)[:300]}); this is a bug in depara, rerun with "
          "DEPARA_DEBUG=1 for the traceback", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    """Run the CLI: the one boundary where failures become one line on stderr and an exit code.

    * :class:`DeparaError` (bad input) → ``error: <what and where>``, exit 2;
    * ``OSError`` (permissions, disk full, a path that vanished) → ``error: <reason>: <path>``, exit 2;
    * ``MemoryError`` / ``RecursionError`` → ``error: …`` naming the limit, exit 2;
    * Ctrl-C (SIGINT) → ``interrupted``, exit 130 (outputs are written atomically, so nothing is half-written);
    * click usage errors → click's own message and exit code;
    * anything else is a bug: ``error: internal error (<type>: <message>)``, exit 1; set ``DEPARA_DEBUG=1`` for
      the traceback.
    Stale temporary files of earlier, killed runs are removed: ``depara-features-<PID>-*`` folders in the temp dir
    at every start (:func:`depara.io.files.clean_stale_temp_dirs`), ``.<name>.<PID>-*.part`` files by the next write
    into their folder (:func:`depara.io.files.clean_stale_parts`).
    """
    import signal
    import threading

    interrupted = False
    previous = None

    def on_sigint(signum, frame):  # noqa: ARG001 - signal handler signature
        nonlocal interrupted
        interrupted = True
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, on_sigint)
    from ..io.files import clean_stale_temp_dirs

    clean_stale_temp_dirs()  # feature folders of earlier runs that were killed (SIGKILL) before cleaning up
    _show_library_notes()  # e.g. "probe folder P: skipped pipe.png (not a regular file ...)"
    try:
        # In non-standalone mode click/typer *return* the exit code of Exit/Abort (e.g. 130 on Ctrl-C).
        rv = app(args=argv, standalone_mode=False, prog_name="depara")
    except DeparaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # typer/click exits (e.g. --help)
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    except OSError as exc:
        print(f"error: {_one_line(_os_error(exc))}", file=sys.stderr)
        return 2
    except MemoryError:
        print("error: out of memory (try a smaller --batch-size, fewer probes, or --feature-memory-mb 0)",
              file=sys.stderr)
        return 2
    except RecursionError:
        print("error: input nested too deeply (recursion limit reached)", file=sys.stderr)
        return 2
    except Exception as exc:  # usage errors of click, or of the click that newer typer bundles (typer._click)
        return _other_failure(exc, interrupted)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if interrupted:
        print("interrupted", file=sys.stderr)
        return 130
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
