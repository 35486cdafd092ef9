"""The inverse models, one contract (see :mod:`inverse_lib.models.base`).

>>> from inverse_lib import models
>>> models.names()
['na', 'tandem', 'cvae', 'inn', 'cinn']
"""
from __future__ import annotations

import importlib

from .base import Config, History, InverseModel, load, resolve_device, train_loop

# name -> "module:Class"; imported on first use so that a broken optional model never blocks the others
_SPECS = {
    "na": "neural_adjoint:NeuralAdjoint",
    "tandem": "tandem:Tandem",
    "cvae": "cvae:CVAE",
    "inn": "inn:INN",
    "cinn": "inn:CINN",
}
# Baselines that need no deep model (the book's "beyond the paper" chapter).
BASELINES = {
    "adjoint": "adjoint:ClassicalAdjoint",
    "random": "adjoint:RandomSearch",
    "mdn": "mdn:MDN",
}


class _Registry(dict):
    def __missing__(self, name):
        specs = {**_SPECS, **BASELINES}
        if name not in specs:
            raise ValueError(f"unknown model {name!r}; known models: {', '.join(specs)}")
        module, cls = specs[name].split(":")
        self[name] = getattr(importlib.import_module(f"{__name__}.{module}"), cls)
        return self[name]


MODELS = _Registry()


def names(baselines: bool = False) -> list[str]:
    """Names of the inverse models, in the paper's order (and the baselines after them if asked)."""
    return list(_SPECS) + (list(BASELINES) if baselines else [])


def get(name: str) -> type[InverseModel]:
    """The model class registered as ``name``."""
    return MODELS[name]


def create(name: str, task, device: str = "auto", seed: int = 0, **overrides) -> InverseModel:
    """Build model ``name`` for ``task`` with the authors' settings for that task, changed by ``overrides``.

    Raises:
        ValueError: an unknown model or setting (the message lists the valid ones), or a model that is not
            defined for the task (the INN when y has more dimensions than x).
    """
    return MODELS[name](task, device=device, seed=seed, **overrides)


__all__ = ["names", "create", "get", "load", "InverseModel", "Config", "History", "train_loop",
           "resolve_device", "MODELS"]
