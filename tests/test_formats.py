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


@pytest.mark.slow  # a Brian2 build and run (about 3 s of CPU); the torch export above covers the format
def test_nwb_export_of_brian2_spikes_on_a_finer_step(add_run, tmp_path):
    pynwb = pytest.importorskip("pynwb")
    import shutil

    from cognet.brian.replay import verify_run
    from cognet.interchange import exporter
    from cognet.training.records import load_record

    run = tmp_path / "run"
    shutil.copytree(add_run, run, ignore=shutil.ignore_patterns("spikes-*"))
    verify_run(run, trials=4, dt_ms=0.5, target="numpy")
    with pytest.raises(FileNotFoundError, match="--dt-ms 0.5"):  # the 1 ms record was not made
        exporter("nwb")(run, tmp_path / "a.nwb", source="brian2")
    res = exporter("nwb")(run, tmp_path / "b.nwb", source="brian2", dt_ms=0.5)
    rec = load_record(run / "spikes-brian2-dt0.5.safetensors")
    assert rec.dt_ms == 0.5 and res["trials"] == 4 and "redrawn" in res["task_symbols"]
    assert pynwb.validate(path=str(tmp_path / "b.nwb")) == []
    z = rec.z.numpy()
    with pynwb.NWBHDF5IO(str(tmp_path / "b.nwb"), "r") as io:
        f = io.read()
        for j in range(z.shape[2]):
            trial, step = np.nonzero(z[:, :, j])
            assert np.array_equal(np.asarray(f.units.get_unit_spike_times(j)), (trial * rec.T + step) * 0.5e-3)
        assert np.allclose(f.trials["stop_time"][:], (np.arange(4) + 1) * rec.T * 0.5e-3)
        assert json.loads(f.notes)["record"]["source"] == "brian2"
        batch = _redrawn(run, 4)
        assert list(f.trials["a"][:]) == list(batch.info["a"])


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


# -- TensorBoard ---------------------------------------------------------------------------------

def _events(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    ea.Reload()
    return ea


def test_tensorboard_events_hold_every_scalar_and_the_hparams(tmp_path, tiny_sets):
    pytest.importorskip("tensorboard")
    from tensorboard.plugins.hparams import plugin_data_pb2

    from cognet.training.config import build_config
    from cognet.training.io import read_jsonl
    from cognet.training.tensorboard import EVAL_TAGS, TEST_METRICS, TRAIN_TAGS
    from cognet.training.trainer import config_hash, train

    sets = [*tiny_sets, "train.tensorboard=true"]
    cfg = build_config("copy", "bptt", 1, None, sets)
    plain = build_config("copy", "bptt", 1, None, tiny_sets)
    assert "tensorboard" not in plain.resolved_dict()["train"] and cfg.resolved_dict()["train"]["tensorboard"] is True
    assert config_hash(plain) != config_hash(cfg)
    out = tmp_path / "run"
    summary = train(cfg, out, progress=False)
    rows = read_jsonl(out / "metrics.jsonl")
    ea = _events(out / "tensorboard")
    tags = set(ea.Tags()["scalars"])
    assert tags == set(TRAIN_TAGS.values()) | set(EVAL_TAGS.values()) | set(TEST_METRICS.values())
    train_rows = [r for r in rows if not r.get("eval")]
    eval_rows = [r for r in rows if r.get("eval")]
    assert len(train_rows) == 6 and len(eval_rows) == 2
    for key, tag in TRAIN_TAGS.items():
        ev = ea.Scalars(tag)
        assert [e.step for e in ev] == [r["iteration"] for r in train_rows]
        assert np.allclose([e.value for e in ev], [r[key] for r in train_rows], rtol=1e-6)  # float32 events
    for key, tag in EVAL_TAGS.items():
        ev = ea.Scalars(tag)
        assert [e.step for e in ev] == [3, 6]
        assert np.allclose([e.value for e in ev], [r[key] for r in eval_rows], rtol=1e-6)
    for key, tag in TEST_METRICS.items():
        (ev,) = ea.Scalars(tag)
        assert ev.step == summary["iterations"] and ev.value == pytest.approx(summary[key], rel=1e-6)
    content = ea.PluginTagToContent("hparams")
    assert {"_hparams_/experiment", "_hparams_/session_start_info", "_hparams_/session_end_info"} <= set(content)
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    hp = {k: v.ListFields()[0][1] for k, v in start.hparams.items()}
    assert hp["network.n_rec"] == 20 and hp["train.lr"] == pytest.approx(cfg.train.lr) and hp["task.name"] == "copy"
    assert hp["rule"] == "bptt" and hp["seed"] == 1 and "train.tensorboard" not in hp
    exp = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {m.name.tag for m in exp.metric_infos} == set(TEST_METRICS.values())
    # the exporter replays metrics.jsonl into the same events, for runs trained without the key
    from cognet.interchange import exporter

    res = exporter("tensorboard")(out, tmp_path / "tb")
    assert res["iterations"] == 6 and res["evaluations"] == 2 and res["hparams"]
    replay = _events(tmp_path / "tb")
    assert set(replay.Tags()["scalars"]) == tags
    for tag in tags:
        assert [(e.step, e.value) for e in replay.Scalars(tag)] == [(e.step, e.value) for e in ea.Scalars(tag)]
    assert replay.PluginTagToContent("hparams") == content
    with pytest.raises(ValueError, match="already holds TensorBoard events"):
        exporter("tensorboard")(out, tmp_path / "tb")
    with pytest.raises(FileNotFoundError, match="metrics.jsonl"):
        exporter("tensorboard")(tmp_path / "nothing", tmp_path / "tb2")


def test_tensorboard_key_is_validated_and_absent_by_default(tiny_sets):
    from cognet.training.config import ConfigError, build_config

    assert "tensorboard" not in build_config("add").resolved_dict()["train"]
    with pytest.raises(ConfigError, match="train.tensorboard"):
        build_config("add", sets=["train.tensorboard=maybe"])


def test_tensorboard_events_of_a_killed_and_resumed_run_have_each_step_once(tmp_path, tiny_sets, kill_at):
    pytest.importorskip("tensorboard")
    from cognet.training.config import build_config
    from cognet.training.io import read_jsonl
    from cognet.training.trainer import train

    cfg = build_config("add", sets=[*tiny_sets, "train.tensorboard=true"])
    out = tmp_path / "part"
    kill_at(cfg, out, 5)  # killed during iteration 6: iteration 5 is logged, the last checkpoint is at 4
    assert [e.step for e in _events(out / "tensorboard").Scalars("train/loss")] == [1, 2, 3, 4, 5]
    s = train(cfg, out, progress=False)
    assert s["resumed_from_iteration"] == 4
    rows = [r for r in read_jsonl(out / "metrics.jsonl") if not r.get("eval")]
    ev = _events(out / "tensorboard").Scalars("train/loss")
    assert [e.step for e in ev] == [1, 2, 3, 4, 5, 6]  # the first run's step 5 was purged
    assert np.allclose([e.value for e in ev], [r["loss"] for r in rows], rtol=1e-6)


def test_cli_export_nwb_passes_source_and_trials_and_refuses_foreign_options(add_run, tmp_path):
    from click.testing import CliRunner
    from pynwb import NWBHDF5IO

    from cognet.cli import main

    out = tmp_path / "cli.nwb"
    res = CliRunner().invoke(main, ["export", str(add_run), "--format", "nwb", "--out", str(out), "--trials", "4",
                                    "--source", "torch", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["trials"] == 4
    with NWBHDF5IO(str(out), "r") as io:
        assert len(io.read().trials) == 4
    res = CliRunner().invoke(main, ["export", str(add_run), "--format", "nwb", "--out", str(tmp_path / "x.nwb"),
                                    "--resistance", "one"])
    assert res.exit_code == 2 and "--resistance do not apply to --format nwb" in res.output
    res = CliRunner().invoke(main, ["export", str(add_run), "--format", "nir", "--out", str(tmp_path / "x.nir"),
                                    "--source", "brian2"])
    assert res.exit_code == 2 and "--source do not apply to --format nir" in res.output
