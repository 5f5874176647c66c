"""Interchange: NIR export/import round trips (cognet, snnTorch, Norse) and the plain-Brian2 script.

The snnTorch and Norse tests skip only when those libraries are absent (docs/interchange.md
gives the install lines); the measured differences they check are explained there.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

nir = pytest.importorskip("nir")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

from cognet.core.network import RSNN  # noqa: E402
from cognet.core.params import NeuronParams  # noqa: E402
from cognet.interchange import nir as cnir  # noqa: E402
from cognet.interchange.brian2_script import export_run as export_brian2  # noqa: E402


def _save_run(run_dir: Path, sets, neurons=None, seed=0) -> Path:
    """A run directory with an (untrained) copy network: model.safetensors (as small_run in test_brian2)."""
    import tasks
    from cognet.training.config import build_config
    from cognet.training.model import build_network, neuron_params, save_model

    cfg = build_config(task="copy", sets=["network.n_rec=24", "task.n_bits=3", "network.input_scale=4.0",
                                          "network.rec_scale=1.0", *sets])
    task = tasks.get_task(cfg.task, cfg.task_params, cfg.network.dt_ms)
    neurons = neurons or neuron_params(cfg.network, np.random.default_rng(seed))
    net = build_network(task.n_in, task.n_out, neurons, cfg.network, cfg.surrogate,
                        generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        net.b_out.normal_(generator=torch.Generator().manual_seed(seed + 1))
    run_dir.mkdir(parents=True, exist_ok=True)
    save_model(run_dir / "model.safetensors", net, cfg)
    return run_dir


LIF_SETS = ["network.reset=zero", "network.refractory_ms=0", "network.alif_fraction=0", "network.tau_out_ms=15"]


@pytest.fixture(scope="module")
def lif_run(tmp_path_factory):
    """A NIR-exportable run: LIF only, zero reset, no refractoriness, per-neuron tau and v_th."""
    rng = np.random.default_rng(3)
    p = NeuronParams(n=24, dt_ms=1.0, tau_mem_ms=rng.uniform(8, 40, 24), v_th=rng.uniform(0.8, 1.2, 24),
                     reset="zero", refractory_ms=0.0, beta=0.0)
    return _save_run(tmp_path_factory.mktemp("lif") / "run", LIF_SETS, neurons=p)


@pytest.fixture(scope="module")
def alif_run(tmp_path_factory):
    """The default neuron model: 50 % ALIF (per-neuron tau_a), 2 ms refractory, subtractive reset."""
    return _save_run(tmp_path_factory.mktemp("alif") / "run", ["network.tau_adapt_ms=50", "network.tau_adapt_max_ms=300"])


def _load(run_dir):
    from cognet.training.model import load_model

    net, cfg = load_model(Path(run_dir) / "model.safetensors", dtype=torch.float64)
    return net.eval(), cfg


def _spikes(run_dir, trials=16, seed=11):
    import tasks
    from cognet.training.records import record_torch

    net, cfg = _load(run_dir)
    task = tasks.get_task(cfg.task, cfg.task_params, cfg.network.dt_ms)
    return record_torch(net, task, trials, seed)


# -- cognet -> NIR -> cognet ----------------------------------------------------------------------

def test_nir_round_trip_gives_identical_network_and_spikes(lif_run, tmp_path):
    res = cnir.export_run(lif_run, tmp_path / "net.nir")
    assert res["nodes"] == sorted(["input", "w_in", "lif", "w_rec", "w_out", "readout", "bias", "output"])
    g = nir.read(str(tmp_path / "net.nir"))
    assert ("lif", "w_rec") in g.edges and ("w_rec", "lif") in g.edges  # the recurrent cycle
    net, _ = _load(lif_run)
    tau_s = net.neurons.array("tau_mem_ms") / 1000.0
    np.testing.assert_array_equal(g.nodes["lif"].tau, tau_s)
    np.testing.assert_array_equal(g.nodes["lif"].r, tau_s / 1e-3)  # R = tau / dt
    np.testing.assert_array_equal(g.nodes["lif"].v_threshold, net.neurons.array("v_th"))
    np.testing.assert_array_equal(g.nodes["w_in"].weight, net.w_in.detach().numpy())

    out = cnir.import_file(tmp_path / "net.nir", tmp_path / "back", task="copy", task_params={"n_bits": 3}, trials=16)
    assert out["imported"]["readout"] and out["iterations"] == 0
    back, cfg = _load(tmp_path / "back")
    for name in ("w_in", "w_rec", "w_out", "b_out"):
        assert torch.equal(getattr(back, name), getattr(net, name)), name
    for f in ("tau_mem_ms", "v_th", "refractory_ms", "beta"):
        np.testing.assert_array_equal(back.neurons.array(f), net.neurons.array(f))
    assert back.neurons.reset == "zero" and back.tau_out_ms == 15.0 and cfg.network.reset == "zero"
    assert (tmp_path / "back" / "config.yaml").exists()
    summary = json.loads((tmp_path / "back" / "summary.json").read_text())
    assert summary["imported"]["format"] == "nir" and 0 <= summary["bit_accuracy"] <= 1

    a, b = _spikes(lif_run), _spikes(tmp_path / "back")
    assert a.z.sum() > 200
    assert torch.equal(a.z, b.z) and torch.equal(a.logits, b.logits)

    # the other resistance convention (R = 1, weights scaled by tau / dt) is the same network
    cnir.export_run(lif_run, tmp_path / "one.nir", resistance="one")
    parsed = cnir.network_from_graph(nir.read(str(tmp_path / "one.nir")))
    np.testing.assert_allclose(parsed["w_in"], net.w_in.detach().numpy(), rtol=1e-14, atol=1e-15)
    assert nir.read(str(tmp_path / "one.nir")).nodes["lif"].r.tolist() == [1.0] * 24


def test_nir_export_refuses_what_nir_cannot_state(alif_run, tmp_path):
    with pytest.raises(ValueError) as err:
        cnir.export_run(alif_run, tmp_path / "x.nir")
    msg = str(err.value)
    alif = np.flatnonzero(_load(alif_run)[0].neurons.adaptive)
    assert 0 < len(alif) < 24
    assert f"{len(alif)} neuron(s) [{alif[0]}, {alif[1]}" in msg and "are ALIF" in msg  # the ALIF ones, by index
    assert "refractory" in msg and "reset='subtract'" in msg
    assert not (tmp_path / "x.nir").exists()
    # one problem at a time is named alone
    with pytest.raises(ValueError, match=r"refractory period of more than one step") as err:
        cnir.check_exportable(NeuronParams(n=3, reset="zero", refractory_ms=[0.0, 2.0, 1.0]))
    assert "1 neuron(s) [1]" in str(err.value) and "ALIF" not in str(err.value)
    cnir.check_exportable(NeuronParams(n=3, reset="zero", refractory_ms=1.0))  # one step: no refractoriness


def _graph(nodes, edges, **meta):
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


def test_nir_import_feed_forward_nested_subgraph_and_dt_from_tau_over_r():
    rng = np.random.default_rng(0)
    n, n_in = 5, 4
    w_in, w_rec = rng.normal(size=(n, n_in)), rng.normal(size=(n, n))
    tau = np.full(n, 0.02)
    dt = 5e-4
    lif = nir.LIF(tau=tau, r=tau / dt, v_leak=np.zeros(n), v_threshold=np.ones(n))
    # feed-forward, dt implied by tau / r (0.5 ms)
    ff = cnir.network_from_graph(_graph({"in": nir.Input(input_type={"input": np.array([n_in])}),
                                         "fc": nir.Affine(weight=w_in, bias=np.zeros(n)), "lif": lif,
                                         "out": nir.Output(output_type={"output": np.array([n])})},
                                        [("in", "fc"), ("fc", "lif"), ("lif", "out")]))
    assert ff["dt_ms"] == pytest.approx(0.5) and not ff["w_rec"].any() and ff["w_out"] is None
    np.testing.assert_array_equal(ff["w_in"], w_in)
    # the recurrent population as a nested subgraph, as snnTorch writes an RLeaky
    sub = _graph({"input": nir.Input(input_type={"input": np.array([n])}), "lif": lif,
                  "w_rec": nir.Linear(weight=w_rec), "output": nir.Output(output_type={"output": np.array([n])})},
                 [("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")])
    nested = cnir.network_from_graph(_graph({"in": nir.Input(input_type={"input": np.array([n_in])}),
                                             "fc": nir.Linear(weight=w_in), "rnn": sub,
                                             "out": nir.Output(output_type={"output": np.array([n])})},
                                            [("in", "fc"), ("fc", "rnn"), ("rnn", "out")]), dt_ms=1.0)
    np.testing.assert_array_equal(nested["w_rec"], 2.0 * w_rec)  # gain R dt / tau = 2 at dt = 1 ms
    np.testing.assert_array_equal(nested["w_in"], 2.0 * w_in)
    assert nested["nodes"]["lif"] == "rnn.lif" and nested["dt_ms"] == 1.0


@pytest.mark.parametrize("change, message", [
    ("cuba", "CubaLIF"), ("leak", "v_leak must be 0"), ("reset", "v_reset must be 0"), ("bias", "nonzero bias"),
    ("two_inputs", "exactly one Input"),
])
def test_nir_import_refuses_what_cognet_cannot_represent(change, message):
    n = 3
    lif = nir.LIF(tau=np.full(n, 0.02), r=np.full(n, 20.0), v_leak=np.full(n, 0.1 if change == "leak" else 0.0),
                  v_threshold=np.ones(n), v_reset=np.full(n, 0.5 if change == "reset" else 0.0))
    if change == "cuba":
        lif = nir.CubaLIF(tau_syn=np.full(n, 0.005), tau_mem=np.full(n, 0.02), r=np.full(n, 20.0),
                          v_leak=np.zeros(n), v_threshold=np.ones(n))
    nodes = {"in": nir.Input(input_type={"input": np.array([2])}),
             "fc": nir.Affine(weight=np.ones((n, 2)), bias=np.full(n, 0.3 if change == "bias" else 0.0)),
             "lif": lif, "out": nir.Output(output_type={"output": np.array([n])})}
    edges = [("in", "fc"), ("fc", "lif"), ("lif", "out")]
    if change == "two_inputs":
        nodes["in2"] = nir.Input(input_type={"input": np.array([2])})
        edges.append(("in2", "fc"))
    with pytest.raises(ValueError, match=message):
        cnir.network_from_graph(_graph(nodes, edges), dt_ms=1.0)


# -- the command line ------------------------------------------------------------------------------

def test_export_import_cli_and_clean_errors(lif_run, alif_run, tmp_path):
    from click.testing import CliRunner

    from cognet.cli.main import main

    run = CliRunner()
    r = run.invoke(main, ["export", str(lif_run), "--format", "nir", "--out", str(tmp_path / "a.nir"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["neurons"] == 24
    r = run.invoke(main, ["import", str(tmp_path / "a.nir"), "--task", "copy", "--set", "task.n_bits=3",
                          "--out", str(tmp_path / "imp"), "--trials", "8"])
    assert r.exit_code == 0, r.output
    assert "readout from the file" in r.output

    errors = [
        (["export", str(lif_run), "--format", "onnx", "--out", str(tmp_path / "o")], "unknown export format 'onnx'"),
        (["export", str(alif_run), "--format", "nir", "--out", str(tmp_path / "b.nir")], "are ALIF (beta > 0)"),
        (["export", str(lif_run), "--format", "nir", "--trials", "3", "--out", str(tmp_path / "c.nir")],
         "--trials do not apply"),
        (["import", str(tmp_path / "a.nir"), "--task", "add", "--out", str(tmp_path / "imp2")], "60 inputs but task 'add' has 25"),
        (["import", str(tmp_path / "a.nir"), "--task", "copy", "--set", "task.n_bits=3", "--out", str(tmp_path / "imp")],
         "already holds a model"),
        (["import", str(tmp_path / "a.nir"), "--task", "nope", "--out", str(tmp_path / "x")], "unknown task 'nope'"),
    ]
    bad = tmp_path / "bad.nir"
    bad.write_bytes(b"not an hdf5 file")
    errors.append((["import", str(bad), "--task", "copy", "--out", str(tmp_path / "y")], "not a readable NIR file"))
    for args, message in errors:
        r = run.invoke(main, args)
        assert r.exit_code == 2, (args, r.output)
        assert "Error:" in r.output and message in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "b.nir").exists() and not (tmp_path / "y").exists()


@pytest.mark.slow
def test_imported_run_passes_verify_and_analyze(lif_run, tmp_path):
    """`cognet verify` and `cognet analyze` accept an imported run (Brian2 build: slow on a busy machine)."""
    from click.testing import CliRunner

    from cognet.cli.main import main

    cnir.export_run(lif_run, tmp_path / "a.nir")
    cnir.import_file(tmp_path / "a.nir", tmp_path / "imp", task="copy", task_params={"n_bits": 3}, trials=8)
    r = CliRunner().invoke(main, ["verify", str(tmp_path / "imp"), "--trials", "3", "--target", "numpy", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output.strip().splitlines()[-1])
    assert res["identical_trial_fraction"] == 1.0 and res["brian2"]["spikes"] > 0
    r = CliRunner().invoke(main, ["analyze", str(tmp_path / "imp"), "--source", "brian2", "--json"])
    assert r.exit_code == 0, r.output
    a = json.loads(r.output.strip().splitlines()[-1])
    assert a["record"]["trials_used"] == 3 and a["task"] == "copy" and Path(a["report"]).exists()


# -- cognet -> NIR -> snnTorch / Norse -------------------------------------------------------------

def _net(dt_ms, euler=False, recurrent=True, seed=0):
    """A 20-neuron LIF network; ``euler`` sets tau so that exp(-dt/tau) = 1 - dt/20 ms (forward Euler's decay)."""
    tau = -dt_ms / math.log(1 - dt_ms / 20.0) if euler else 20.0
    p = NeuronParams(n=20, dt_ms=dt_ms, tau_mem_ms=tau, v_th=1.0, reset="zero", refractory_ms=0.0, beta=0.0)
    net = RSNN(8, p, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64, input_scale=3.0,
               rec_scale=1.0)
    if not recurrent:
        with torch.no_grad():
            net.w_rec.zero_()
    return net.eval()


def _drive(module, x):
    state, zs = None, []
    for t in range(x.shape[0]):
        out, state = module(x[t], state)
        zs.append(out.detach())
    return torch.stack(zs)


def _like(net, euler, **weights):
    other = _net(net.neurons.dt_ms, euler=euler)
    other.load_state_dict(net.state_dict())
    with torch.no_grad():
        for k, v in weights.items():
            getattr(other, k).copy_(v)
    return other


def _cognet_z(net, x):
    with torch.no_grad():
        return net(x, [(0, x.shape[0])]).z


def _poisson(T, B, n_in, p, seed=0):
    return torch.as_tensor((np.random.default_rng(seed).random((T, B, n_in)) < p).astype(np.float64))


def test_snntorch_reads_the_graph(capsys):
    """snnTorch (dt fixed at 0.1 ms, forward Euler, R = tau/dt): identical to cognet with Euler's decay;
    its recurrent import adds W_rec to the input path (docs/interchange.md)."""
    pytest.importorskip("nirtorch")
    sin = pytest.importorskip("snntorch.import_nir")
    x = _poisson(400, 4, 8, 0.01)
    ff = _net(0.1, recurrent=False)
    z = _drive(sin.import_from_nir(cnir.graph_from_network(ff, readout=False)).double(), x)
    assert z.sum() > 100
    assert torch.equal(z, _cognet_z(_like(ff, euler=True), x))
    exact = _cognet_z(ff, x)
    rec = _net(0.1)
    z_rec = _drive(sin.import_from_nir(cnir.graph_from_network(rec, readout=False)).double(), x)
    z_cog = _cognet_z(rec, x)
    assert not torch.equal(z_rec, z_cog)
    # what snnTorch 1.0 computes: lif(W_rec (W_in x[t] + z[t-1])), i.e. input weights W_rec W_in
    assert torch.equal(z_rec, _cognet_z(_like(rec, euler=True, w_in=rec.effective_w_rec() @ rec.w_in), x))
    with capsys.disabled():
        print(f"\nsnnTorch feed-forward: {int((z != exact).sum())} of {z.numel()} entries differ from cognet's exact "
              f"decay ({int(z.sum())} spikes); recurrent: {int(z_rec.sum())} vs cognet {int(z_cog.sum())} spikes")


def test_cognet_reads_what_snntorch_writes():
    """snnTorch's export of Linear -> RLeaky (flat keys "1.lif", "1.w_rec"): dt from tau / R (0.1 ms);
    the recurrent Affine's bias (a constant current) is refused until it is zero."""
    pytest.importorskip("nirtorch")
    snn = pytest.importorskip("snntorch")
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 10, bias=False),
                                snn.RLeaky(beta=0.9, linear_features=10, init_hidden=True, reset_mechanism="zero",
                                           output=True))
    with pytest.raises(ValueError, match="'1.w_rec' .* nonzero bias"):
        cnir.network_from_graph(export_to_nir(model, torch.zeros(6)))
    with torch.no_grad():
        model[1].recurrent.bias.zero_()
    d = cnir.network_from_graph(export_to_nir(model, torch.zeros(6)))
    assert d["dt_ms"] == pytest.approx(0.1, rel=1e-6) and d["nodes"]["lif"] == "1.lif"
    np.testing.assert_allclose(d["neurons"].array("tau_mem_ms"), 1.0, rtol=1e-6)  # tau = dt / (1 - beta)
    np.testing.assert_allclose(d["w_rec"], model[1].recurrent.weight.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(d["w_in"], model[0].weight.detach().numpy(), rtol=1e-6)


def test_norse_reads_the_graph(capsys):
    """Norse (forward Euler at the dt it is given, ignores R): with resistance="one" identical to cognet
    with Euler's decay; with the exact decay the trains part after tens of steps (measured)."""
    pytest.importorskip("nirtorch")
    norse_torch = pytest.importorskip("norse.torch")
    from cognet.brian.replay import compare_spikes

    x = _poisson(400, 8, 8, 0.03)
    net = _net(1.0)
    module = norse_torch.from_nir(cnir.graph_from_network(net, readout=False, resistance="one"), dt=1e-3).double()
    z = _drive(module, x)
    assert z.sum() > 500
    assert torch.equal(z, _cognet_z(_like(net, euler=True), x))
    exact = _cognet_z(net, x)
    cmp = compare_spikes(exact.transpose(0, 1).numpy(), z.transpose(0, 1).numpy(), 1.0)
    assert cmp["identical_trial_fraction"] < 1.0 and cmp["spike_match_fraction"] > 0.5
    with capsys.disabled():
        print(f"\nNorse vs cognet (exact decay): spike match {cmp['spike_match_fraction']:.3f}, identical trials "
              f"{cmp['identical_trial_fraction']:.2f}, first divergence {cmp['first_divergence_ms']} ms, median "
              f"{cmp['median_first_divergence_ms']} ms")


# -- the plain-Brian2 script -------------------------------------------------------------------------

def test_brian2_script_files_follow_the_network(alif_run, tmp_path):
    """Fast checks of what the script is built from (no Brian2 run): equations from NeuronParams,
    plain-array weights, inputs (Poisson drawn with the seed)."""
    from cognet.brian.bridge import neuron_model

    net, _ = _load(alif_run)
    a = export_brian2(alif_run, tmp_path / "p1", source="poisson", poisson_rate_hz=50.0, steps=2000, trials=2, seed=4)
    text = (tmp_path / "p1" / "network.py").read_text()
    assert "import cognet" not in text and "from cognet" not in text
    m = neuron_model(net.neurons)
    assert f'EQUATIONS = """\n{m.equations}\n"""' in text and f"THRESHOLD = {m.threshold!r}" in text
    assert f"REFRACTORY = {m.refractory!r}" in text and "'synapses', 'thresholds'" in text
    compile(text, "network.py", "exec")
    w = np.load(tmp_path / "p1" / "weights.npz", allow_pickle=False)
    np.testing.assert_array_equal(w["w_rec"], net.effective_w_rec().detach().numpy())
    for name, (values, _) in m.per_neuron.items():
        np.testing.assert_array_equal(w[f"param_{name}"], values)
    x1 = np.load(tmp_path / "p1" / "input.npz", allow_pickle=False)["x"]
    assert a["input"] == "poisson" and x1.shape == (2000, 2, 60) and abs(x1.mean() - 0.05) < 0.005
    export_brian2(alif_run, tmp_path / "p2", source="poisson", poisson_rate_hz=50.0, steps=2000, trials=2, seed=4)
    assert np.array_equal(x1, np.load(tmp_path / "p2" / "input.npz", allow_pickle=False)["x"])
    with pytest.raises(FileNotFoundError, match="cognet verify"):
        export_brian2(alif_run, tmp_path / "p3", source="record")


@pytest.mark.slow
def test_brian2_script_reproduces_cognet_verify(alif_run, tmp_path):
    """The script, run in a subprocess without cognet, gives `cognet verify`'s Brian2 spikes."""
    from cognet.brian.replay import verify_run
    from cognet.training.records import load_record

    run_dir = _save_run(tmp_path / "run", ["network.tau_adapt_ms=50", "network.tau_adapt_max_ms=300"])
    res = verify_run(run_dir, trials=3, target="numpy")
    assert res["identical_trial_fraction"] == 1.0
    out = export_brian2(run_dir, tmp_path / "b2")
    assert out["input"] == "record" and out["trials"] == 3
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-I", "network.py"], cwd=tmp_path / "b2", env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    got = np.load(tmp_path / "b2" / "spikes.npz", allow_pickle=False)
    want = load_record(run_dir / "spikes-brian2.safetensors")
    assert got["z"].shape == (want.T, 3, 24) and got["z"].sum() > 100
    assert _load(run_dir)[0].neurons.adaptive.any() and (_load(run_dir)[0].neurons.refractory_steps > 1).all()
    np.testing.assert_array_equal(got["z"].transpose(1, 0, 2), want.z.numpy())
    assert got["readout"].shape == (want.T, 3, 1)
