"""A Taskonomy in miniature that runs offline: procedural scenes, ≥ 12 task networks sharing one encoder
architecture, transfer affinities measured by training, and the benchmark of DEPARA against them.

    >>> from depara.benches.taskbank import run_bench
    >>> run_bench("tiny", "out/taskbank_tiny")          # trains (cached), measures, scores, plots
"""

from __future__ import annotations

from .scenes import SHAPE_CLASSES, SceneBatch, generate_scenes
from .tasks import TASK_NAMES, TASKS, Task, get_task, resolve_tasks, task_inputs

__all__ = ["SHAPE_CLASSES", "SceneBatch", "generate_scenes", "TASK_NAMES", "TASKS", "Task", "get_task",
           "resolve_tasks", "task_inputs", "run_bench"]


def __getattr__(name: str):
    # run_bench pulls in torch; import it on first use so `import depara.benches.taskbank` stays light.
    if name == "run_bench":
        from .bench import run_bench

        return run_bench
    raise AttributeError(f"module 'depara.benches.taskbank' has no attribute {name!r}")
