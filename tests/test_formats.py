"""The field's formats: NWB export (read back with pynwb, every spike time compared; NWB's
validator), neo Blocks (spike for spike against the record; Elephant runs on them), and
TensorBoard event files (read back with TensorBoard's own reader)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.filterwarnings("ignore:The 'copy' argument in Quantity is deprecated")


@pytest.fixture(scope="module")
def add_run(tmp_path_factory):
    from cognet.training.config import build_config
    from cognet.training.trainer import train

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("fmt") / "add"
    cfg = build_config("add", "bptt", 0, None, ["network.n_rec=16", "train.iterations=3", "train.batch_size=8",
                                                "train.eval_every=3", "train.eval_trials=8", "task.n_bits=3"])
    train(cfg, out, progress=False)
    return out


def _redrawn(run_dir, trials):
    """The held-out trials of the run drawn directly from the task (independent of the exporters)."""
    import tasks
    from cognet.training.model import load_model
    from cognet.training.trainer import derive_seeds

    _, cfg = load_model(run_dir / "model.safetensors")
    task = tasks.get_task(cfg.task, cfg.task_params, cfg.network.dt_ms)
    g = torch.Generator().manual_seed(derive_seeds(cfg.seed)["test"])
    return task.sample(trials, g, split="test")


# -- NWB ---------------------------------------------------------------------------------------

def test_nwb_export_reads_back_spike_for_spike_and_validates(add_run, tmp_path):
    pynwb = pytest.importorskip("pynwb")
    from cognet.interchange import EXPORTERS, exporter
    from cognet.training.model import load_model
    from cognet.training.records import load_record

    assert EXPORTERS["nwb"] == "cognet.interchange.nwb:export_run"
    out = tmp_path / "add.nwb"
    res = exporter("nwb")(add_run, out, source="torch", trials=12)
    assert res["record_created"] and (add_run / "spikes-torch.safetensors").exists()
    assert pynwb.validate(path=str(out)) == []
    rec = load_record(add_run / "spikes-torch.safetensors")
    net, cfg = load_model(add_run / "model.safetensors")
    z, x = rec.z[:12].numpy(), rec.x[:12].numpy()
    T, dt_s = rec.T, rec.dt_ms / 1000
    batch = _redrawn(add_run, rec.trials)  # the record's trials are drawn in one batch of its size
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        f = io.read()
        units = f.units
        assert len(units) == net.n == z.shape[2]
        n_spikes = 0
        for j in range(net.n):
            times = np.asarray(units.get_unit_spike_times(j))
            trial, step = np.nonzero(z[:, :, j])
            assert np.array_equal(times, (trial * T + step) * dt_s)  # every spike, exactly
            n_spikes += len(times)
        assert n_spikes == int(z.sum()) == res["spikes"] > 0
        beta = net.neurons.array("beta")
        assert list(units["neuron_type"][:]) == ["ALIF" if b > 0 else "LIF" for b in beta]
        assert "LIF" in list(units["neuron_type"][:]) and "ALIF" in list(units["neuron_type"][:])
        assert np.allclose(units["tau_mem"][:], net.neurons.array("tau_mem_ms") / 1000)
        assert np.allclose(units["tau_adapt"][:], net.neurons.array("tau_adapt_ms") / 1000)
        assert np.allclose(units["beta"][:], beta) and np.allclose(units["v_th"][:], net.neurons.array("v_th"))
        inp = f.processing["input"]["input_units"]
        assert len(inp) == x.shape[2]
        for j in range(x.shape[2]):
            trial, step = np.nonzero(x[:, :, j])
            assert np.array_equal(np.asarray(inp.get_unit_spike_times(j)), (trial * T + step) * dt_s)
        assert int(sum(len(inp.get_unit_spike_times(j)) for j in range(x.shape[2]))) == int(x.sum())
        assert set(inp["channel"][:]) == set(rec.channels)
        tr = f.trials
        assert len(tr) == 12
        assert np.allclose(tr["start_time"][:], np.arange(12) * T * dt_s)
        assert np.allclose(tr["stop_time"][:], (np.arange(12) + 1) * T * dt_s)
        # task fields: operands and result drawn independently from the task agree
        assert list(tr["a"][:]) == list(batch.info["a"]) and list(tr["b"][:]) == list(batch.info["b"])
        assert list(tr["result"][:]) == [a + b for a, b in zip(batch.info["a"], batch.info["b"])]
        target = tr["target"][:]  # [trials, W, bits]
        assert np.array_equal(target, batch.target.numpy().transpose(1, 0, 2).astype(np.int64))
        answer = tr["answer"][:]
        assert np.array_equal(answer, (rec.logits[:, :12].numpy() > 0).transpose(1, 0, 2))
        correct = (answer == target).all(-1).all(-1)
        assert np.array_equal(tr["correct"][:], correct)
        assert np.allclose(tr["window_start"][0], np.asarray(rec.windows)[:, 0] * dt_s)
        notes = json.loads(f.notes)
        import cognet
        from cognet.training.trainer import config_hash

        assert notes["cognet_version"] == cognet.__version__ and notes["config_hash"] == config_hash(cfg)
        assert notes["config"]["network"]["n_rec"] == 16 and notes["record"]["source"] == "torch"
        assert "redrawn" in notes["task_symbols"]


def test_nwb_export_errors_name_what_is_missing(add_run, tmp_path):
    pytest.importorskip("pynwb")
    from cognet.interchange import exporter

    export = exporter("nwb")
    with pytest.raises(FileNotFoundError, match="cognet verify"):
        export(add_run, tmp_path / "b.nwb", source="brian2")
    with pytest.raises(ValueError, match="unknown source"):
        export(add_run, tmp_path / "b.nwb", source="nest")
    with pytest.raises(ValueError, match="unknown NWB export option"):
        export(add_run, tmp_path / "b.nwb", bins=3)
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        export(tmp_path, tmp_path / "b.nwb")
    assert not (tmp_path / "b.nwb").exists()
    with pytest.raises(ValueError, match="unknown export format"):
        exporter("nwb2")


# -- neo -----------------------------------------------------------------------------------------

def test_to_neo_block_matches_the_record_and_feeds_elephant(add_run):
    pytest.importorskip("neo")
    import quantities as pq
    from elephant.statistics import mean_firing_rate

    from cognet.interchange.neo_io import input_trains, recurrent_trains, to_neo
    from cognet.training.records import load_record

    block = to_neo(add_run, trials=6)
    rec = load_record(add_run / "spikes-torch.safetensors")
    batch = _redrawn(add_run, rec.trials)  # the record's trials are drawn in one batch of its size
    assert len(block.segments) == 6 and block.annotations["task"] == "add"
    assert len(block.groups) == rec.z.shape[2] + rec.x.shape[2]
    for i, seg in enumerate(block.segments):
        rt, it = recurrent_trains(seg), input_trains(seg)
        assert len(rt) == rec.z.shape[2] and len(it) == rec.x.shape[2]
        for j, st in enumerate(rt):
            assert st.units == pq.ms and float(st.t_stop) == rec.T * rec.dt_ms
            assert np.array_equal(st.magnitude, np.flatnonzero(rec.z[i, :, j].numpy()) * rec.dt_ms)
        for j, st in enumerate(it):
            assert np.array_equal(st.magnitude, np.flatnonzero(rec.x[i, :, j].numpy()) * rec.dt_ms)
        assert seg.annotations["a"] == batch.info["a"][i] and seg.annotations["b"] == batch.info["b"][i]
        assert seg.annotations["answer_windows_ms"] == [[a * rec.dt_ms, b * rec.dt_ms] for a, b in rec.windows]
        assert isinstance(seg.annotations["correct"], bool)
    st = recurrent_trains(block.segments[0])[-1]
    assert st.annotations["neuron_type"] == "ALIF" and st.annotations["tau_mem_ms"] == 20.0
    # a group holds one neuron across all trials
    g = block.groups[3]
    assert len(g.spiketrains) == 6 and all(s.annotations["neuron"] == 3 for s in g.spiketrains)
    rate = float(mean_firing_rate(recurrent_trains(block.segments[0])[0]).rescale(pq.Hz))
    assert rate == pytest.approx(float(rec.z[0, :, 0].sum()) * 1000 / (rec.T * rec.dt_ms))
