"""Many runs at once: grids and executors (:mod:`cognet.experiments.sweep`), the seed
papers' claims as experiments (:mod:`cognet.experiments.claims`) and the full results
table (:mod:`cognet.experiments.reproduce`)."""


def __getattr__(name: str):
    """cognet 0.1's ``cognet.experiments`` module became :mod:`cognet.experiments.claims`;
    its names (``EXPERIMENTS``, ``run_experiment``, ...) stay reachable here."""
    import importlib

    if name.startswith("__"):
        raise AttributeError(name)
    try:
        return getattr(importlib.import_module("cognet.experiments.claims"), name)
    except AttributeError:
        raise AttributeError(f"module 'cognet.experiments' has no attribute {name!r}") from None
