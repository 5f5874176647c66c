"""Training batches drawn one ahead (cognet.training.prefetch) and kernels that release the GIL."""

import threading
import time

import pytest
import torch

import tasks
from cognet.core import fused
from cognet.core.functional import constants
from cognet.core.params import NeuronParams
from cognet.core.surrogate import Surrogate
from cognet.training.prefetch import BatchPrefetcher


def _same(a, b):
    return (torch.equal(a.x, b.x) and torch.equal(a.target, b.target) and torch.equal(a.mask, b.mask)
            and torch.equal(a.active, b.active))


@pytest.mark.parametrize("name", ["dup-rev", "add", "evidence"])
def test_prefetched_batches_and_state_equal_drawing_in_turn(name):
    task = tasks.get_task(name)
    g_seq, g_pre = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    seq = []
    states = []
    for _ in range(4):
        seq.append(task.sample(8, g_seq))
        states.append(g_seq.get_state())
    with BatchPrefetcher(lambda: task.sample(8, g_pre), g_pre) as pre:
        for k in range(4):
            assert _same(pre.next(), seq[k])
            # what a checkpoint keeps: the state after the batches handed out, none drawn ahead
            assert torch.equal(pre.state(), states[k])
    assert torch.equal(g_pre.get_state(), states[-1])  # close put the generator back
    assert _same(task.sample(8, g_pre), task.sample(8, g_seq))


def test_prefetch_error_surfaces_from_the_batch_that_raised_and_close_is_safe():
    g = torch.Generator().manual_seed(0)
    calls = []

    def draw():
        calls.append(float(torch.rand(1, generator=g)))
        if len(calls) == 2:
            raise ValueError("bad batch 2")
        return len(calls)

    pre = BatchPrefetcher(draw, g)
    assert pre.next() == 1
    with pytest.raises(ValueError, match="bad batch 2"):
        pre.next()
    pre.close()
    pre.close()
    with pytest.raises(RuntimeError, match="closed"):
        pre.next()


def test_fused_kernels_release_the_gil():
    # a Python thread keeps counting while one long kernel call runs: it could not if the
    # call held the GIL (then the count stands still until the call returns)
    try:
        fused.load_backend()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    torch.manual_seed(0)
    n, T, B = 256, 400, 32
    c = constants(NeuronParams(n=n), dtype=torch.float32)
    cur = torch.rand(T, B, n) * 0.2
    w = torch.randn(n, n) * 0.05
    count, stop = [0], threading.Event()

    def spin():
        while not stop.is_set():
            count[0] += 1

    th = threading.Thread(target=spin)
    th.start()
    try:
        time.sleep(0.05)
        inside = []
        for _ in range(3):
            before = count[0]
            t0 = time.perf_counter()
            fused.simulate_fused(cur, w, c, Surrogate())
            wall = time.perf_counter() - t0
            inside.append((count[0] - before, wall))
    finally:
        stop.set()
        th.join()
    # a held GIL lets the counter move only at the call's edges (a few switch intervals)
    assert max(k for k, _ in inside) > 1000, inside
