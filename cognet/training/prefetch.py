"""Draw the next training batch while the current one trains.

A batch (the task's symbols, drawn in Python, then one uniform number per input neuron and
step) costs 5-30 % of a fused iteration: ``dup-rev`` 35 ms of about 110 ms. It depends on the
training generator alone, never on the weights, so :class:`BatchPrefetcher` draws it one batch
ahead in a background thread while the kernels (which release the GIL,
:mod:`cognet.core.fused`) train on the current one: the same batches in the same order, bit
for bit, as drawing each at the start of its iteration. :meth:`BatchPrefetcher.state` is the
generator's state *as if nothing were drawn ahead*, which is what a checkpoint keeps (a resumed
run draws the same next batch), and :meth:`BatchPrefetcher.close` puts the generator back in it.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Optional

import torch


class BatchPrefetcher:
    """``draw()`` (which must use ``generator`` and nothing else that changes) run one call ahead.

    Use as a context manager, or call :meth:`close`; an exception raised by ``draw`` surfaces
    from the :meth:`next` call whose batch it was."""

    def __init__(self, draw: Callable[[], object], generator: torch.Generator) -> None:
        self._draw = draw
        self._g = generator
        self._pool: Optional[ThreadPoolExecutor] = ThreadPoolExecutor(1, thread_name_prefix="cognet-batch")
        self._state = generator.get_state()  # before the pending draw
        self._pending: Future = self._pool.submit(self._draw)

    def next(self):
        """The next batch; starts drawing the one after it."""
        if self._pool is None:
            raise RuntimeError("BatchPrefetcher is closed")
        batch = self._pending.result()
        self._state = self._g.get_state()  # the generator is idle here: no draw is running
        self._pending = self._pool.submit(self._draw)
        return batch

    def state(self) -> torch.Tensor:
        """The generator's state after the batches handed out so far (none drawn ahead)."""
        return self._state.clone()

    def close(self) -> None:
        """Wait for the pending draw, drop its batch and reset the generator to :meth:`state`."""
        if self._pool is None:
            return
        try:
            self._pending.result()
        except Exception:  # the batch is dropped unseen, and so is its error
            pass
        self._pool.shutdown(wait=True)
        self._pool = None
        self._g.set_state(self._state)

    def __enter__(self) -> "BatchPrefetcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
