"""The Brian2 bridge: equations generated from :class:`~cognet.core.params.NeuronParams`
(:mod:`cognet.brian.bridge`) and the replay of held-out trials with a spike-by-spike
comparison (:mod:`cognet.brian.replay`). Named ``brian`` so as not to shadow ``brian2``."""

from .bridge import Brian2Unavailable
from .replay import verify_run

__all__ = ["Brian2Unavailable", "verify_run"]
