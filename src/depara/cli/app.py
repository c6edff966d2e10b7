"""The Typer application objects that command modules register onto.

Each command module (``cli/<group>.py``) imports the app objects from here and decorates its commands.
`cli/main.py` imports every command module, then runs ``app``.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="depara",
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
bench_app = typer.Typer(help="Ground-truth benchmarks (procedural task bank).", no_args_is_help=True)
cache_app = typer.Typer(help="The store of graphs and features `depara select` reuses: info, clear.",
                        no_args_is_help=True)
demo_app = typer.Typer(help="Run depara end to end on embedded data: `depara demo` or `depara demo layers`.")

app.add_typer(data_app, name="data")
app.add_typer(taskonomy_app, name="taskonomy")
app.add_typer(bench_app, name="bench")
app.add_typer(demo_app, name="demo")
app.add_typer(cache_app, name="cache")
