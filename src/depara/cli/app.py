"""The Typer application objects that command modules register onto.

Each command module (``cli/<group>.py``) imports the app objects from here and decorates its commands.
`cli/main.py` imports every command module, then runs ``app``.
"""

from __future__ import annotations

import typer
from typer.core import TyperGroup

#: The help panels of ``depara --help`` after the main jobs (select, demo, report), which come first.
GRAPHS = "Graphs"
ESTIMATORS = "Estimators"
BENCHES = "Benches with measured ground truth"
DATA = "Data"
CACHE = "Cache"
#: The main jobs, listed first and in this order.
MAIN_COMMANDS = ("select", "demo", "report")


class _MainFirst(TyperGroup):
    """Lists the main jobs first (:data:`MAIN_COMMANDS`), then the other commands in their registration order."""

    def list_commands(self, ctx):  # noqa: ARG002 - click's signature
        names = list(super().list_commands(ctx))
        return [n for n in MAIN_COMMANDS if n in names] + [n for n in names if n not in MAIN_COMMANDS]


app = typer.Typer(
    name="depara",
    cls=_MainFirst,
    help="Which pretrained model, and which of its layers, to transfer: DEPARA graphs, peer metrics, benchmarks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Sub-command groups.
data_app = typer.Typer(help="Prepare datasets: split, shrink, synthesise the offline syn->real digits pair.",
                       no_args_is_help=True)
taskonomy_app = typer.Typer(help="Taskonomy model-selection experiment from the published feature formats.",
                            no_args_is_help=True)
bench_app = typer.Typer(help="Benches with measured ground truth: the procedural task bank, the real-image bank.",
                        no_args_is_help=True)
cache_app = typer.Typer(help="The store of graphs and features `depara select` reuses: info, verify, clear.",
                        no_args_is_help=True)
demo_app = typer.Typer(help="Run depara end to end on embedded data: `depara demo`, `depara demo layers` or `depara demo benchmarks`.")

app.add_typer(data_app, name="data", rich_help_panel=DATA)
app.add_typer(taskonomy_app, name="taskonomy", rich_help_panel=BENCHES)
app.add_typer(bench_app, name="bench", rich_help_panel=BENCHES)
app.add_typer(demo_app, name="demo")
app.add_typer(cache_app, name="cache", rich_help_panel=CACHE)
