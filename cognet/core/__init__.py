"""The neuron model: parameters, pure step functions, surrogate derivatives, the network
module and the spike encodings. Imports nothing from the rest of cognet or from
``tasks``, ``rules`` and ``analysis`` (checked by ``tests/test_layers.py``).

* :mod:`cognet.core.params`: :class:`NeuronParams`, the single source of every neuron constant;
* :mod:`cognet.core.surrogate`: :class:`Surrogate` (Heaviside forward, shaped derivative backward);
* :mod:`cognet.core.functional`: :func:`alif_step` and :func:`simulate` (pure functions);
* :mod:`cognet.core.network`: :class:`RSNN`, the thin ``nn.Module`` around them;
* :mod:`cognet.core.encoding`: Bernoulli rate encoding and bit helpers;
* :mod:`cognet.core.conv`: the spiking convolutional front end (image tasks);
* :mod:`cognet.core.bntt`: batch normalisation through time.
"""

from .functional import ALIFState, alif_step, constants, simulate
from .network import RSNN, readout_matrix
from .params import NeuronParams
from .surrogate import SHAPES, Surrogate

__all__ = ["ALIFState", "NeuronParams", "RSNN", "SHAPES", "Surrogate", "alif_step", "constants", "readout_matrix",
           "simulate"]
