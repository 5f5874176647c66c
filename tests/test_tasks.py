"""Task targets against integer arithmetic, encodings, windows, scoring."""

import pytest
import torch

import tasks
from cognet.core.encoding import bits_of, int_of, rate_encode


def g(seed=0):
    return torch.Generator().manual_seed(seed)


def test_registry_and_unknown_task():
    assert {"copy", "reverse", "add"} <= set(tasks.TASKS)
    with pytest.raises(ValueError, match="unknown task 'nope'; available: .*add"):
        tasks.get_task("nope")


def test_bits_roundtrip():
    for v in (0, 1, 5, 255, 2**40 + 3):
        assert int_of(bits_of(v, 48)) == v


@pytest.mark.parametrize("n_bits", [1, 4, 7])
def test_add_targets_are_integer_sums(n_bits):
    t = tasks.get_task("add", {"n_bits": n_bits})
    b = t.sample(50, g(n_bits))
    for k in range(50):
        a, bb = b.info["a"][k], b.info["b"][k]
        assert 0 <= a < 2**n_bits and 0 <= bb < 2**n_bits
        answer = [int(x) for x in b.target[:, k, 0].tolist()]
        assert int_of(answer) == a + bb
        # the operand bits shown on the input channels encode a and b, LSB first
        act = b.active[:, k]
        assert int_of(act[:n_bits, 1].tolist()) == a and int_of(act[:n_bits, 3].tolist()) == bb
        assert act[n_bits].tolist() == [0, 0, 0, 0, 1]
    assert len(b.windows) == n_bits + 1 and b.mask.all()


@pytest.mark.parametrize("name", ["copy", "reverse"])
def test_copy_reverse_targets(name):
    t = tasks.get_task(name, {"n_bits": 5})
    b = t.sample(20, g(3))
    bits = b.info["bits"]
    for k in range(20):
        want = bits[k].tolist()
        if name == "reverse":
            want = want[::-1]
        assert b.target[:, k, 0].long().tolist() == want
        assert b.active[:5, k, :2].argmax(-1).tolist() == bits[k].tolist()
        assert b.active[5:, k, 2].all()


def test_windows_lie_in_answer_steps():
    t = tasks.get_task("copy", {"n_bits": 3, "step_ms": 30, "answer_fraction": 0.5})
    b = t.sample(2, g())
    assert b.T == 6 * 30
    assert b.windows == [(105, 120), (135, 150), (165, 180)]
    assert b.phases == {"store": [(0, 90)], "recall": [(90, 180)]}


def test_rate_encoding_statistics():
    active = torch.zeros(1, 400, 2)
    active[0, :, 0] = 1
    x = rate_encode(active, steps_per_symbol=100, neurons_per_channel=5, rate_on_hz=200, rate_off_hz=10,
                    dt_ms=1.0, generator=g())
    assert x.shape == (100, 400, 10)
    on_rate = x[:, :, :5].mean().item() * 1000
    off_rate = x[:, :, 5:].mean().item() * 1000
    assert on_rate == pytest.approx(200, rel=0.03) and off_rate == pytest.approx(10, rel=0.1)


def test_sampling_is_seeded():
    t = tasks.get_task("add")
    b1, b2, b3 = t.sample(4, g(1)), t.sample(4, g(1)), t.sample(4, g(2))
    assert torch.equal(b1.x, b2.x) and torch.equal(b1.target, b2.target)
    assert not torch.equal(b1.x, b3.x)


def test_scores_and_chance():
    t = tasks.get_task("add", {"n_bits": 3})
    b = t.sample(8, g())
    perfect = (b.target * 2 - 1) * 5.0
    s = t.score(perfect, b)
    assert s == {"bit_accuracy": 1.0, "sequence_accuracy": 1.0}
    wrong_one = perfect.clone()
    wrong_one[0, 0, 0] *= -1
    s = t.score(wrong_one, b)
    assert s["sequence_accuracy"] == pytest.approx(7 / 8)
    assert s["bit_accuracy"] == pytest.approx(1 - 1 / (8 * 4))
    # chance = the best input-independent answer (the most frequent sum bits)
    assert t.chance() == {"bit_accuracy": 0.515625, "sequence_accuracy": 0.125}


def test_loss_grad_matches_autodiff():
    t = tasks.get_task("copy", {"n_bits": 3})
    b = t.sample(5, g())
    logits = torch.randn(3, 5, 1, dtype=torch.float64, requires_grad=True)
    t.loss(logits, b).backward()
    torch.testing.assert_close(logits.grad, t.loss_grad_logits(logits.detach(), b))


@pytest.mark.parametrize("over,needle", [
    ({"n_bits": 0}, "n_bits"), ({"step_ms": 2.5}, "step_ms"), ({"answer_fraction": 0}, "answer_fraction"),
    ({"bogus": 1}, "unknown task key"), ({"n_bits": "four"}, "task.n_bits must be an integer"),
])
def test_bad_task_params(over, needle):
    with pytest.raises(ValueError, match=needle):
        tasks.get_task("add", over)
