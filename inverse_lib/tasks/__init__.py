"""Benchmark tasks: a registry of ground-truth forward models with their priors.

>>> from inverse_lib import tasks
>>> tasks.names()[:3]
['ballistics', 'sine_wave', 'robotic_arm']
>>> tasks.get("robotic_arm").simulate([[0.3, 0.0, 0.0, 0.0]]).tolist()
[[2.0, 0.3]]
"""
from __future__ import annotations

import importlib

from .base import Task, as_tensor, check_count, make_task
from .ballistics import BALLISTICS
from .robotic_arm import ROBOTIC_ARM
from .sine_wave import SINE_WAVE

_REGISTRY: dict[str, Task] = {}
# Tasks whose modules are imported on first use (the meta-material pulls in its simulator and proxy).
_LAZY = {"meta_material": "inverse_lib.tasks.meta_material"}


def register(task: Task, overwrite: bool = False) -> Task:
    """Add ``task`` to the registry under ``task.name`` and return it."""
    if not isinstance(task, Task):
        raise TypeError(f"register() takes a Task (see tasks.make_task); got {type(task).__name__}")
    if task.name in _REGISTRY and not overwrite:
        raise ValueError(f"a task named {task.name!r} is already registered; pass overwrite=True to replace it")
    _REGISTRY[task.name] = task
    return task


def names() -> list[str]:
    """Names of the known tasks, the paper's four first."""
    return list(_REGISTRY) + [n for n in _LAZY if n not in _REGISTRY]


def get(name: str | Task) -> Task:
    """The task registered as ``name`` (a :class:`Task` is passed through).

    Raises:
        ValueError: for an unknown name; the message lists the known ones.
    """
    if isinstance(name, Task):
        return name
    if name not in _REGISTRY and name in _LAZY:
        importlib.import_module(_LAZY[name])
    if name not in _REGISTRY:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(names())}")
    return _REGISTRY[name]


for _t in (BALLISTICS, SINE_WAVE, ROBOTIC_ARM):
    register(_t)

__all__ = ["Task", "make_task", "register", "names", "get", "as_tensor", "check_count"]
