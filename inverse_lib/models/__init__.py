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


class _Registry(dict):
    def __missing__(self, name):
        if name not in _SPECS:
            raise ValueError(f"unknown model {name!r}; known models: {', '.join(_SPECS)}")
        module, cls = _SPECS[name].split(":")
        self[name] = getattr(importlib.import_module(f"{__name__}.{module}"), cls)
        return self[name]


MODELS = _Registry()


def names() -> list[str]:
    """Names of the available models, in the paper's order."""
    return list(_SPECS)


def register(name: str, spec: str) -> None:
    """Add a model class given as ``"package.module:Class"`` (relative names resolve in this package)."""
    _SPECS[name] = spec if spec.startswith(".") or "." not in spec.split(":")[0] else spec
    MODELS.pop(name, None)


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


__all__ = ["names", "create", "get", "load", "register", "InverseModel", "Config", "History", "train_loop",
           "resolve_device", "MODELS"]
