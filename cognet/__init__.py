"""cognet: recurrent LIF/ALIF spiking networks for symbolic bit-sequence and arithmetic tasks.

Core objects: :class:`NeuronParams` (the single source of neuron constants),
:func:`alif_step` (the pure step), :class:`RSNN` (the network module), :class:`Surrogate`.

The package is layered (each layer imports only the ones below it; ``docs/architecture.md``):

* :mod:`cognet.core`: the neuron model (parameters, step functions, surrogates, network, encodings);
* ``tasks``, ``rules`` (top-level packages): task generators and learning rules, on the core;
* :mod:`cognet.training`: configuration, the trainer, run files, spike records, plug-ins;
* :mod:`cognet.brian` and ``analysis``: Brian2 replay; firing-regime statistics and reports;
* :mod:`cognet.experiments`: sweeps, the seed papers' claims, ``reproduce``;
* :mod:`cognet.cli`: every command (the only place that parses arguments or prints).
"""

from .core import SHAPES, ALIFState, NeuronParams, RSNN, Surrogate, alif_step, constants, readout_matrix, simulate

__version__ = "0.1.0"

# the flat module paths of cognet 0.1 (cognet.config, cognet.train, ...) stay importable
from ._aliases import install as _install_aliases  # noqa: E402

_install_aliases()

__all__ = ["ALIFState", "NeuronParams", "RSNN", "SHAPES", "Surrogate", "alif_step", "constants", "readout_matrix",
           "simulate", "__version__"]
