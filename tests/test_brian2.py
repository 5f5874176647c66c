"""Brian2 bridge: exact equivalence with the torch model, generated equations, verify_run.

The default tests use Brian2's numpy target (no compiler, quick on a fresh CI machine).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

brian2 = pytest.importorskip("brian2")
# brian2's equation parser calls a deprecated pyparsing API
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

from cognet.brian import bridge as bb  # noqa: E402
from cognet.core.functional import constants, simulate as torch_simulate  # noqa: E402
from cognet.core.params import NeuronParams  # noqa: E402
from cognet.core.surrogate import Surrogate  # noqa: E402


def hand_made(reset: str, seed: int = 0, n: int = 12, n_in: int = 6):
    """Mixed LIF/ALIF population with per-neuron constants and refractory periods of 1-5 steps."""
    rng = np.random.default_rng(seed)
    p = NeuronParams(
        n=n, dt_ms=1.0, tau_mem_ms=rng.uniform(10, 30, n), v_th=rng.uniform(0.8, 1.2, n), reset=reset,
        refractory_ms=rng.integers(1, 6, n).astype(float), tau_adapt_ms=rng.uniform(50, 300, n),
        beta=np.where(np.arange(n) % 2 == 0, 0.0, 0.3),
    )
    w_in = rng.normal(0, 0.7, (n, n_in))
    w_rec = rng.normal(0, 0.5, (n, n))
    np.fill_diagonal(w_rec, 0.0)
    return p, w_in, w_rec


def torch_spikes(p: NeuronParams, w_in, w_rec, x) -> np.ndarray:
    c = constants(p, dtype=torch.float64)
    cur = torch.nn.functional.linear(torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(w_in))
    return torch_simulate(cur, torch.as_tensor(w_rec), c, Surrogate()).z.numpy().astype(np.uint8)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_identical_spike_trains_on_hand_made_network(reset):
    p, w_in, w_rec = hand_made(reset)
    rng = np.random.default_rng(1)
    T, B = 300, 4
    x = (rng.random((T, B, w_in.shape[1])) < 0.06).astype(np.uint8)
    z_torch = torch_spikes(p, w_in, w_rec, x)
    run = bb.simulate(w_in, w_rec, p, x, target="numpy")
    assert run.z.shape == (T, B, p.n) and run.target == "numpy"
    assert z_torch.sum() > 300
    assert np.array_equal(run.z, z_torch), f"{int((run.z != z_torch).sum())} mismatched spike entries"
    # the features are exercised: without refractoriness, recurrence or adaptation torch differs
    for changed in (p.replace(refractory_ms=1.0), p.replace(beta=0.0)):
        assert not np.array_equal(torch_spikes(changed, w_in, w_rec, x), z_torch)
    assert not np.array_equal(torch_spikes(p, w_in, 0 * w_rec, x), z_torch)
    # refractoriness binds: some inter-spike interval equals a neuron's refractory period
    n_ref = p.refractory_steps
    hit = False
    for b in range(B):
        for j in range(p.n):
            isi = np.diff(np.flatnonzero(run.z[:, b, j]))
            assert (isi >= max(n_ref[j], 1)).all()
            hit |= n_ref[j] > 1 and (isi == n_ref[j]).any()
    assert hit


def test_trials_are_independent_copies():
    p, w_in, w_rec = hand_made("subtract", seed=3)
    rng = np.random.default_rng(2)
    x = (rng.random((120, 3, w_in.shape[1])) < 0.08).astype(np.uint8)
    both = bb.simulate(w_in, w_rec, p, x, target="numpy").z
    alone = bb.simulate(w_in, w_rec, p, x[:, 1:2], target="numpy").z
    assert np.array_equal(both[:, 1:2], alone)


def test_trials_split_into_runs_of_bounded_synapses_give_the_same_spikes():
    p, w_in, w_rec = hand_made("subtract", seed=4)
    rng = np.random.default_rng(5)
    x = (rng.random((100, 7, w_in.shape[1])) < 0.08).astype(np.uint8)
    per_trial = int(np.count_nonzero(w_in) + np.count_nonzero(w_rec))
    one = bb.simulate(w_in, w_rec, p, x, target="numpy")
    split = bb.simulate(w_in, w_rec, p, x, target="numpy", max_synapses=3 * per_trial)
    assert one.info["runs"] == 1 and split.info["runs"] == 3  # 3 + 3 + 1 trials
    assert split.info["trials"] == 7 and split.n_synapses == one.n_synapses == 7 * per_trial
    assert one.z.sum() > 50 and np.array_equal(one.z, split.z)
    assert bb.trials_per_run(per_trial, per_trial - 1) == 1  # a trial larger than the budget runs alone
    assert bb.trials_per_run(10) == bb.MAX_SYNAPSES_PER_RUN // 10
    with pytest.raises(ValueError, match="max_synapses"):
        bb.simulate(w_in, w_rec, p, x, target="numpy", max_synapses=0)


def test_generated_model_follows_parameters():
    base = NeuronParams(n=4, tau_mem_ms=20.0, beta=0.2, tau_adapt_ms=100.0, refractory_ms=3.0)
    m = bb.neuron_model(base)
    assert m.constants["tau_m"] == (20.0, "ms")
    assert m.constants["t_ref"] == (3.0, "ms")
    np.testing.assert_allclose(m.constants["v_reset"][0], 1.0 / np.exp(-1 / 20))
    np.testing.assert_allclose(m.constants["a_jump"][0], 1.0 / np.exp(-1 / 100))
    assert "da/dt" in m.equations and "beta * a" in m.threshold and "a += a_jump" in m.reset
    m2 = bb.neuron_model(base.replace(tau_mem_ms=[10.0, 20.0, 30.0, 40.0]))
    assert "tau_m : second (constant)" in m2.equations and "tau_m" not in m2.constants
    np.testing.assert_array_equal(m2.per_neuron["tau_m"][0], [10, 20, 30, 40])
    assert m2.per_neuron["v_reset"][0][0] != m2.per_neuron["v_reset"][0][1]
    assert bb.neuron_model(base.replace(tau_mem_ms=30.0)).constants["tau_m"] == (30.0, "ms")
    lif = bb.neuron_model(base.replace(beta=0.0, reset="zero", refractory_ms=1.0))
    assert "da/dt" not in lif.equations and lif.reset == "v = 0" and lif.refractory is None
    assert lif.threshold == "v - v_th > 0"
    fine = bb.neuron_model(base.with_dt(0.1))
    assert fine.constants["t_ref"] == (3.0, "ms") and fine.dt_ms == 0.1
    assert fine.constants["v_reset"] != m.constants["v_reset"]


def test_integrator_writes_the_exact_solution():
    from brian2 import Equations, ms
    from brian2.stateupdaters.base import StateUpdateMethod

    m = bb.neuron_model(NeuronParams(n=3, beta=[0.0, 0.1, 0.2], tau_adapt_ms=[50.0, 100.0, 200.0]))
    eqs = Equations(m.equations)
    ns = {k: v * ms if u == "ms" else v for k, (v, u) in m.constants.items()}
    ours = StateUpdateMethod.apply_stateupdater(eqs, ns, method=bb.INTEGRATOR)
    exact = StateUpdateMethod.apply_stateupdater(eqs, ns, method="exact")
    assert ours == exact and "exp(-dt/tau_m)" in ours


def test_finer_step_keeps_input_times_and_recurrent_delay_in_ms():
    # neuron 0 is driven by the input, neuron 1 only by neuron 0 (weights far above threshold)
    p = NeuronParams(n=2, dt_ms=1.0, refractory_ms=2.0)
    w_in = np.array([[5.0], [0.0]])
    w_rec = np.array([[0.0, 0.0], [5.0, 0.0]])
    x = np.zeros((30, 1, 1), dtype=np.uint8)
    x[10, 0, 0] = 1
    coarse = bb.simulate(w_in, w_rec, p, x, target="numpy").z[:, 0]
    assert np.flatnonzero(coarse[:, 0])[0] == 10 and np.flatnonzero(coarse[:, 1])[0] == 11
    fine = bb.simulate(w_in, w_rec, p.with_dt(0.1), x, input_dt_ms=1.0, rec_delay_ms=1.0, target="numpy")
    assert fine.z.shape == (300, 1, 2)
    s0, s1 = (np.flatnonzero(fine.z[:, 0, j]) for j in range(2))
    assert s0[0] == 100 and s1[0] == 110  # input at 10 ms, recurrent delay 1 ms
    assert np.diff(s0).min() >= 20  # refractory period 2 ms = 20 fine steps


def test_bad_arguments_are_named():
    p, w_in, w_rec = hand_made("subtract")
    x = np.zeros((5, 1, w_in.shape[1]), dtype=np.uint8)
    with pytest.raises(ValueError, match="target"):
        bb.simulate(w_in, w_rec, p, x, target="fortran")
    with pytest.raises(ValueError, match="input_dt_ms"):
        bb.simulate(w_in, w_rec, p.with_dt(0.3), x, input_dt_ms=1.0, target="numpy")
    with pytest.raises(ValueError, match="rec_delay_ms"):
        bb.simulate(w_in, w_rec, p, x, rec_delay_ms=0.5, target="numpy")
    with pytest.raises(ValueError, match="w_rec"):
        bb.simulate(w_in, w_rec[:3], p, x, target="numpy")
    with pytest.raises(ValueError, match="0 or 1"):
        bb.simulate(w_in, w_rec, p, x + 2, target="numpy")


def test_default_target_without_compiler_warns_and_uses_numpy(monkeypatch):
    monkeypatch.delenv("COGNET_BRIAN2_TARGET", raising=False)
    monkeypatch.setattr(bb, "_COMPILER_OK", False)
    monkeypatch.setattr(bb, "_WARNED_NO_COMPILER", False)
    with pytest.warns(RuntimeWarning, match="compiler"):
        assert bb.resolve_target(None) == "numpy"
    monkeypatch.setenv("COGNET_BRIAN2_TARGET", "cpp_standalone")
    assert bb.resolve_target(None) == "cpp_standalone"
    assert bb.resolve_target("cython") == "cython"


def test_default_target_is_cython_only_once_compiled(monkeypatch, tmp_path):
    monkeypatch.delenv("COGNET_BRIAN2_TARGET", raising=False)
    monkeypatch.setattr(bb, "_COMPILER_OK", True)
    monkeypatch.setattr(bb, "_cython_marker", lambda model, delayed: tmp_path / f"warm-{delayed}")
    m = bb.neuron_model(NeuronParams(n=2))
    assert bb.resolve_target(None, m, False) == "numpy"
    (tmp_path / "warm-False").touch()
    assert bb.resolve_target(None, m, False) == "cython"
    assert bb.resolve_target(None, m, True) == "numpy"


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A run directory holding an (untrained) 24-neuron copy network: model.safetensors."""
    from cognet.training.config import build_config
    from cognet.training.model import build_network, neuron_params, save_model
    import tasks

    cfg = build_config(task="copy", sets=["network.n_rec=24", "task.n_bits=3", "network.input_scale=4.0",
                                          "network.rec_scale=1.0"])
    task = tasks.get_task(cfg.task, cfg.task_params, cfg.network.dt_ms)
    net = build_network(task.n_in, task.n_out, neuron_params(cfg.network, np.random.default_rng(0)), cfg.network,
                        cfg.surrogate, generator=torch.Generator().manual_seed(0))
    run_dir = tmp_path_factory.mktemp("run")
    save_model(run_dir / "model.safetensors", net, cfg)
    return run_dir


def test_verify_run_identical_and_writes_records(small_run):
    from cognet.training.records import load_record
    from cognet.brian.replay import verify_run

    res = verify_run(small_run, trials=12, target="numpy")
    assert res["identical_trial_fraction"] == 1.0 and res["spike_match_fraction"] == 1.0
    assert res["first_divergence_ms"] is None and res["trials"] == 12 and res["dt_ms"] == 1.0
    assert res["torch"]["accuracy"] == res["brian2"]["accuracy"]
    assert res["torch"]["mean_rate_hz"] > 1.0
    assert res["brian2"]["rates_hz"] == res["torch"]["rates_hz"] and len(res["brian2"]["rates_hz"]) == 24
    assert res["brian2"]["wall_s"] > 0
    on_disk = json.loads((small_run / "verify.json").read_text())
    assert on_disk["identical_trial_fraction"] == 1.0
    rt, rb = load_record(small_run / "spikes-torch.safetensors"), load_record(small_run / "spikes-brian2.safetensors")
    assert rb.source == "brian2" and rt.source == "torch"
    assert torch.equal(rt.z, rb.z) and torch.equal(rt.x, rb.x)
    torch.testing.assert_close(rt.logits, rb.logits, rtol=1e-5, atol=1e-5)


def test_verify_run_in_bounded_runs_is_identical(small_run, monkeypatch):
    from cognet.brian.replay import verify_run

    monkeypatch.setattr(bb, "MAX_SYNAPSES_PER_RUN", 1)  # one trial per Brian2 run
    res = verify_run(small_run, trials=3, target="numpy", write=False)
    assert res["brian2"]["runs"] == 3 and res["identical_trial_fraction"] == 1.0
    assert res["torch"]["spikes"] == res["brian2"]["spikes"] > 0


def test_verify_run_finer_step(small_run):
    from cognet.training.records import load_record
    from cognet.brian.replay import verify_run

    verify_run(small_run, trials=6, target="numpy")  # the training-step set
    step_set = {n: (small_run / n).read_bytes() for n in ("verify.json", "spikes-torch.safetensors",
                                                           "spikes-brian2.safetensors")}
    res = verify_run(small_run, trials=6, dt_ms=0.5, target="numpy")
    assert res["dt_ms"] == 0.5 and res["train_dt_ms"] == 1.0
    assert 0.0 < res["spike_match_fraction"] <= 1.0
    # a finer step writes its own files, explains itself, and leaves the training-step set alone
    assert res["files"] == {"verify": "verify-dt0.5.json", "brian2": "spikes-brian2-dt0.5.safetensors"}
    assert "not expected to be identical" in res["note"]
    assert json.loads((small_run / "verify-dt0.5.json").read_text())["dt_ms"] == 0.5
    assert {n: (small_run / n).read_bytes() for n in step_set} == step_set
    rb = load_record(small_run / "spikes-brian2-dt0.5.safetensors")
    rt = load_record(small_run / "spikes-torch.safetensors")
    assert rb.T == 2 * rt.T and rb.dt_ms == 0.5 and rb.windows[0] == (2 * rt.windows[0][0], 2 * rt.windows[0][1])
    assert torch.equal(rb.x[:, ::2], rt.x) and rb.x[:, 1::2].sum() == 0
    with pytest.raises(ValueError, match="dt_ms"):
        verify_run(small_run, trials=2, dt_ms=0.3, target="numpy", write=False)


def test_verify_cli(small_run):
    from click.testing import CliRunner

    from cognet.cli.main import main

    r = CliRunner().invoke(main, ["verify", str(small_run), "--trials", "4", "--target", "numpy", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    assert out["trials"] == 4 and out["identical_trial_fraction"] == 1.0
    r = CliRunner().invoke(main, ["verify", str(small_run / "nope"), "--target", "numpy"])
    assert r.exit_code == 2 and "model.safetensors" in r.output


@pytest.mark.slow
@pytest.mark.parametrize("target", ["cython", "cpp_standalone"])
def test_compiled_targets_identical(target):
    """Compiled targets give the same trains (cold compiles take 15-70 s); twice in one process."""
    if not bb.compiler_works():
        pytest.skip("no C++ compiler")
    for reset in ("subtract", "zero"):
        p, w_in, w_rec = hand_made(reset, seed=5)
        x = (np.random.default_rng(6).random((200, 3, w_in.shape[1])) < 0.06).astype(np.uint8)
        run = bb.simulate(w_in, w_rec, p, x, target=target)
        assert run.target == target
        assert np.array_equal(run.z, torch_spikes(p, w_in, w_rec, x))
    fine = bb.simulate(w_in, w_rec, p.with_dt(0.5), x, input_dt_ms=1.0, rec_delay_ms=1.0, target=target)
    ref = bb.simulate(w_in, w_rec, p.with_dt(0.5), x, input_dt_ms=1.0, rec_delay_ms=1.0, target="numpy")
    assert np.array_equal(fine.z, ref.z)


def test_zero_refractory_next_to_refractory_neurons():
    """refractory_ms=0 means 'next spike possible at the next step', also in a mixed population."""
    p = NeuronParams(n=2, refractory_ms=[0.0, 3.0])
    w_in = np.array([[5.0], [5.0]])
    x = np.ones((12, 1, 1), dtype=np.uint8)
    z = torch_spikes(p, w_in, np.zeros((2, 2)), x)
    assert z[:, 0, 0].all() and np.flatnonzero(z[:, 0, 1]).tolist() == [0, 3, 6, 9]
    assert np.array_equal(bb.simulate(w_in, np.zeros((2, 2)), p, x, target="numpy").z, z)
