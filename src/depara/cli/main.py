"""Entry point of the `depara` command: registers every command module and turns bad input into one line."""

from __future__ import annotations

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


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; a :class:`DeparaError` becomes ``error: <one line>`` on stderr and exit code 2."""
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
    except Exception as exc:  # usage errors of click, or of the click that newer typer bundles (typer._click)
        name = type(exc).__name__
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # ClickException / UsageError / BadParameter
            exc.show()
            return int(exc.exit_code)
        if name == "Exit" and hasattr(exc, "exit_code"):
            return int(exc.exit_code)
        if name == "Abort":
            print("aborted", file=sys.stderr)
            return 1
        raise
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
