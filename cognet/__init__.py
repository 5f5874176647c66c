"""cognet: recurrent LIF/ALIF spiking networks for symbolic bit-sequence and arithmetic tasks.

Core objects: :class:`NeuronParams` (the single source of neuron constants),
:func:`alif_step` (the pure step), :class:`RSNN` (the network module), :class:`Surrogate`.
"""

from .functional import ALIFState, alif_step, constants, simulate
from .network import RSNN, readout_matrix
from .params import NeuronParams
from .surrogate import SHAPES, Surrogate

__version__ = "0.1.0"

__all__ = ["ALIFState", "NeuronParams", "RSNN", "SHAPES", "Surrogate", "alif_step", "constants", "readout_matrix",
           "simulate", "__version__"]
