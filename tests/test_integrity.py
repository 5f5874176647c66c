"""Nothing silently wrong: checksums, validated run files, finite updates, locks, output sets,
and clean errors (``Error: ...``, exit code 2, no traceback) for bad input (issue 16)."""

import errno
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from cognet.cli.main import main
from cognet.training import io
from cognet.training.config import build_config
from cognet.training.io import CorruptFileError, load_tensors, save_tensors
from cognet.training.trainer import TrainingDiverged, Trainer, train

ROOT = Path(__file__).resolve().parents[1]
SETS = ["network.n_rec=12", "train.iterations=4", "train.batch_size=4", "train.eval_every=2",
        "train.eval_trials=8", "train.checkpoint_every=2"]
RUN_FILES = ("config.yaml", "model.safetensors", "checkpoint.safetensors", "metrics.jsonl", "summary.json")


def _cfg(*extra):
    return build_config(task="xor", sets=SETS + list(extra))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("integrity") / "run"
    train(_cfg(), out, progress=False)
    return out


@pytest.fixture
def run(trained, tmp_path):
    """A private copy of the trained run (tests may damage it)."""
    dst = tmp_path / "run"
    shutil.copytree(trained, dst)
    return dst


def _snapshot(d: Path):
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file() and p.name != ".lock"}


def _cli(args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _clean_error(r, *needles):
    assert r.exit_code == 2, (r.exit_code, r.output, r.exception)
    assert "Traceback" not in r.output, r.output
    err = r.stderr[r.stderr.find("Error: "):] if "Error: " in r.stderr else ""
    assert err.startswith("Error: ") and len(err.strip().splitlines()) == 1, r.stderr  # one line, the last
    for n in needles:
        assert n in err, (n, err)


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def _header_len(path: Path) -> int:
    return 8 + int.from_bytes(path.read_bytes()[:8], "little")


# -- checksums ---------------------------------------------------------------------------------
def test_checksums_written_and_checked(tmp_path):
    p = tmp_path / "t.safetensors"
    save_tensors(p, {"a": torch.arange(6.0), "b": torch.ones(2, 3, dtype=torch.uint8)}, {"format": "x"})
    tensors, meta = load_tensors(p)
    table = json.loads(meta["sha256"])
    assert set(table) == {"a", "b", "__metadata__"} and all(len(v) == 64 for v in table.values())
    _flip(p, len(p.read_bytes()) - 1)  # last data byte: in tensor b
    with pytest.raises(CorruptFileError, match=r"t\.safetensors: checksum mismatch in tensor 'b'"):
        load_tensors(p)


def test_file_without_checksums_still_loads(tmp_path):
    from safetensors.torch import save

    p = tmp_path / "old.safetensors"
    p.write_bytes(save({"w": torch.ones(3)}, metadata={"format": "x"}))  # as written before checksums
    tensors, meta = load_tensors(p)
    assert torch.equal(tensors["w"], torch.ones(3)) and "sha256" not in meta


@pytest.mark.parametrize("name", ["model.safetensors", "checkpoint.safetensors"])
@pytest.mark.parametrize("damage", ["truncate", "header", "data"])
def test_damaged_run_file_is_refused(run, name, damage):
    path = run / name
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    elif damage == "header":
        _flip(path, _header_len(path) // 2)
    else:  # in the w_rec data (the middle of the data section)
        _flip(path, (_header_len(path) + len(path.read_bytes())) // 2)
    with pytest.raises(CorruptFileError, match=name.replace(".", r"\.")):
        load_tensors(path)
    (run / "summary.json").unlink()  # so that train resumes (reads the checkpoint) or rebuilds
    before = _snapshot(run)
    if name == "model.safetensors":
        r = _cli(["eval", run, "--trials", "4"])
    else:
        r = _cli(["train", "--task", "xor", "--out", run, "--quiet"] + [a for s in SETS for a in ("--set", s)])
    _clean_error(r, name)
    assert _snapshot(run) == before  # nothing touched


def test_eval_refuses_flipped_weight(run):
    """issue 16: one flipped byte in w_rec was scored by eval and verify."""
    path = run / "model.safetensors"
    tensors, meta = load_tensors(path)
    off = _header_len(path)
    hdr = json.loads(path.read_bytes()[8:off].decode())
    start, end = hdr["w_rec"]["data_offsets"]
    _flip(path, off + (start + end) // 2)
    _clean_error(_cli(["eval", run, "--trials", "4"]), "checksum mismatch in tensor 'w_rec'", "model.safetensors")


# -- crafted files (valid checksums, wrong content) --------------------------------------------
def _recraft(path: Path, tensors=None, **meta_changes):
    t, meta = load_tensors(path)
    t.update(tensors or {})
    meta.update(meta_changes)
    meta.pop("sha256")
    save_tensors(path, t, meta)


def test_crafted_model_metadata_refused(run):
    from cognet.training.model import load_model

    meta = load_tensors(run / "model.safetensors")[1]
    _recraft(run / "model.safetensors", n_in="4")
    with pytest.raises(CorruptFileError, match="n_in=4"):
        load_model(run / "model.safetensors")
    cfg = json.loads(meta["config"])
    cfg["network"]["n_rec"] = -5
    _recraft(run / "model.safetensors", n_in=meta["n_in"], config=json.dumps(cfg))
    _clean_error(_cli(["eval", run]), "model.safetensors", "network.n_rec must be positive")


def test_nonfinite_weights_refused(run):
    t, _ = load_tensors(run / "model.safetensors")
    w = t["w_out"].clone()
    w[0, 0] = float("nan")
    _recraft(run / "model.safetensors", {"w_out": w})
    _clean_error(_cli(["eval", run]), "model.safetensors", "'w_out' holds NaN")


@pytest.mark.parametrize("change,needle", [
    ("base_lrs", "base learning rates [1000000.0]"),
    ("iteration", "iteration 100000"),
    ("lr", "learning rate"),
])
def test_crafted_checkpoint_refused(run, change, needle):
    path = run / "checkpoint.safetensors"
    _, meta = load_tensors(path)
    sched, groups = json.loads(meta["sched"]), json.loads(meta["param_groups"])
    extra = {}
    if change == "base_lrs":
        sched["base_lrs"] = [1e6]
    elif change == "iteration":
        sched["last_epoch"] = 100000
        extra["iteration"] = "100000"
    else:
        groups[0]["lr"] = 0.5
    _recraft(path, sched=json.dumps(sched), param_groups=json.dumps(groups), **extra)
    (run / "summary.json").unlink()
    before = _snapshot(run)
    r = _cli(["train", "--task", "xor", "--out", run, "--quiet"] + [a for s in SETS for a in ("--set", s)])
    _clean_error(r, "checkpoint.safetensors", needle)
    assert _snapshot(run) == before


def test_crafted_record_refused(run):
    from cognet.training.records import load_record, record_torch, save_record
    from cognet.training.model import load_model
    import tasks

    net, cfg = load_model(run / "model.safetensors")
    rec = record_torch(net, tasks.get_task("xor", {}, 1.0), 4, seed=1)
    path = run / "spikes-torch.safetensors"
    save_record(path, rec)
    assert load_record(path).trials == 4
    z = load_record(path).z.clone()
    z[0, 0, 0] = 7
    _recraft(path, {"z": z})
    with pytest.raises(CorruptFileError, match="values other than 0 and 1"):
        load_record(path)
    before = _snapshot(run)
    _clean_error(_cli(["analyze", run]), "spikes-torch.safetensors", "values other than 0 and 1")
    assert _snapshot(run) == before and not (run / "analysis-torch").exists()
    save_record(path, rec)
    _recraft(path, {"mask": rec.mask[:, :2].to(torch.uint8)})
    with pytest.raises(CorruptFileError, match="mask has shape"):
        load_record(path)


# -- finite updates, divergence, early stop ----------------------------------------------------
def test_divergence_without_clipping_stops_with_exit_2(tmp_path):
    """issue 16: grad_clip=0 and peak=1e30 made every weight NaN and exited 0."""
    out = tmp_path / "r"
    r = _cli(["train", "--task", "xor", "--out", out, "--quiet", "--set", "train.grad_clip=0",
              "--set", "surrogate.peak=1e30"] + [a for s in SETS for a in ("--set", s)])
    _clean_error(r, "iteration 1", "train.grad_clip")
    assert not (out / "model.safetensors").exists() and not (out / "summary.json").exists()


def test_nonfinite_update_keeps_last_good_checkpoint(tmp_path):
    cfg = _cfg("train.iterations=8")
    t = Trainer(cfg, tmp_path / "r", progress=False)
    step = t.rule.step
    calls = {"n": 0}

    def poisoned(batch):
        res = step(batch)
        calls["n"] += 1
        if calls["n"] == 5:  # the gradient of the 5th update becomes NaN; the checkpoint is at 4
            t.net.w_rec.grad.view(-1)[0] = float("nan")
        return res

    t.rule.step = poisoned
    with pytest.raises(TrainingDiverged, match="gradient norm became nan at iteration 5"):
        t.run()
    _, meta = load_tensors(tmp_path / "r" / "checkpoint.safetensors")
    assert meta["iteration"] == "4" and not (tmp_path / "r" / "model.safetensors").exists()
    rows = io.read_jsonl(tmp_path / "r" / "metrics.jsonl")
    assert max(r["iteration"] for r in rows) == 4
    # the run resumes from that checkpoint and finishes
    s = train(cfg, tmp_path / "r", progress=False)
    assert s["iterations"] == 8 and s["resumed_from_iteration"] == 4


def test_divergence_advice_names_float32_over_many_steps():
    from cognet.training.guards import divergence_advice

    assert "train.dtype=float64" in divergence_advice(_cfg(), 28000)
    assert "larger network.dt_ms" in divergence_advice(_cfg(), 28000)
    assert "train.dtype=float64" not in divergence_advice(_cfg("train.dtype=float64"), 28000)


def test_early_stop_survives_a_kill_before_the_summary(tmp_path):
    cfg = _cfg("train.iterations=40", "train.target_accuracy=0.01")
    a = train(cfg, tmp_path / "a", progress=False)
    assert a["stopped_early"] and a["iterations"] == 2 and a["stop_score"] >= 0.01
    (tmp_path / "a" / "summary.json").unlink()  # killed after the last checkpoint, before summary.json
    w = load_tensors(tmp_path / "a" / "model.safetensors")[0]
    b = train(cfg, tmp_path / "a", progress=False)
    assert b["iterations"] == 2 and b["stopped_early"] and b["sequence_accuracy"] == a["sequence_accuracy"]
    w2 = load_tensors(tmp_path / "a" / "model.safetensors")[0]
    assert all(torch.equal(w[k], w2[k]) for k in w)


def test_summary_names_validation_test_and_criterion(tmp_path):
    r = _cli(["train", "--task", "xor", "--out", tmp_path / "r", "--set", "train.target_accuracy=0.01"]
             + [a for s in SETS for a in ("--set", s)])
    assert r.exit_code == 0, r.output
    assert "test (8 held-out trials" in r.stdout
    assert "early stop: validation sequence_accuracy" in r.stdout and ">= target 0.01" in r.stdout
    assert "iter 2: validation sequence_accuracy" in r.stderr  # progress on stderr, not stdout
    r = _cli(["train", "--task", "xor", "--out", tmp_path / "j", "--json"] + [a for s in SETS for a in ("--set", s)])
    assert r.exit_code == 0 and "iter 2: validation" in r.stderr
    assert json.loads(r.stdout)["iterations"] == 4  # stdout holds only the JSON


# -- one writer per run directory --------------------------------------------------------------
def test_second_writer_is_refused_and_stale_lock_does_not_block(run):
    # another process holding the lock as run_lock does (flock on DIR/.lock, its PID inside);
    # plain fcntl so that the test needs no second torch import
    code = ("import fcntl, os, sys, time\n"
            "fd = os.open(os.path.join(sys.argv[1], '.lock'), os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB); os.ftruncate(fd, 0); os.write(fd, b'%d\\n' % os.getpid())\n"
            "print('held', flush=True); time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        (run / "summary.json").unlink()
        before = _snapshot(run)
        for args in (["train", "--task", "xor", "--out", run, "--quiet"] + [a for s in SETS for a in ("--set", s)],
                     ["analyze", run, "--trials", "4"]):
            _clean_error(_cli(args), f"{run} is in use by process {holder.pid}")
        assert _snapshot(run) == before
    finally:
        holder.kill()  # SIGKILL: the kernel drops the flock with the process
        holder.wait()
    assert (run / ".lock").read_text().strip() == str(holder.pid)  # the stale PID stays in the file ...
    s = train(_cfg(), run, progress=False)  # ... but does not block
    assert s["iterations"] == 4


def test_lock_is_reentrant_within_a_process(tmp_path):
    with io.run_lock(tmp_path / "d"):
        with io.run_lock(tmp_path / "d"):
            pass
        assert str((tmp_path / "d").resolve()) in io._HELD
    assert not io._HELD


# -- all-or-nothing output sets ----------------------------------------------------------------
def test_output_set_rolls_back_or_forward(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "a.json").write_text("old a")
    (d / "b.json").write_text("old b")
    (d / ".b.json.x1y2.tmp").write_text("torn")  # a stray temp file of a killed atomic_write
    s = io.OutputSet(d, "t")  # "killed" before commit
    io.write_json(s.path(d / "a.json"), "new a")
    assert io.recover_staging(d) == ["removed .b.json.x1y2.tmp", f"removed {s.dir.name}"]
    assert (d / "a.json").read_text() == "old a" and sorted(p.name for p in d.iterdir()) == ["a.json", "b.json"]
    s = io.OutputSet(d, "t")  # "killed" after the manifest, before all files were moved
    io.write_json(s.path(d / "a.json"), "new a")
    io.write_json(s.path(d / "b.json"), "new b")
    io.write_json(s.dir / io.MANIFEST, s._dest)
    os.replace(s.dir / "000-a.json", d / "a.json")
    assert (d / "b.json").read_text() == "old b"  # a mix, for now ...
    with io.run_lock(d):  # ... until the next writer takes the lock
        pass
    assert json.loads((d / "a.json").read_text()) == "new a" and json.loads((d / "b.json").read_text()) == "new b"
    assert sorted(p.name for p in d.iterdir()) == [".lock", "a.json", "b.json"]


def test_failed_analyze_leaves_the_previous_set(run, monkeypatch):
    from analysis import plots
    from analysis.run import analyze_run

    analyze_run(run, trials=4, figures=False)
    before = {**_snapshot(run), **{f"a/{k}": v for k, v in _snapshot(run / "analysis-torch").items()}}

    def full_disk(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(run / "x.png"))

    monkeypatch.setattr(plots, "raster_figure", full_disk)
    r = _cli(["analyze", run, "--trials", "8"])  # would record 8 trials anew
    _clean_error(r, "No space left on device", "free some disk space")
    after = {**_snapshot(run), **{f"a/{k}": v for k, v in _snapshot(run / "analysis-torch").items()}}
    assert after == before and not [p for p in run.iterdir() if p.name.startswith(".staging")]


@pytest.mark.slow
def test_failed_verify_leaves_the_previous_set(run, monkeypatch):
    pytest.importorskip("brian2")
    from cognet.brian import replay

    replay.verify_run(run, trials=2, target="numpy")
    before = _snapshot(run)
    real = replay.write_json

    def full_disk(path, obj):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(replay, "write_json", full_disk)
    _clean_error(_cli(["verify", run, "--trials", "3", "--target", "numpy"]), "No space left on device")
    assert _snapshot(run) == before and not [p for p in run.iterdir() if p.name.startswith(".staging")]
    monkeypatch.setattr(replay, "write_json", real)


# -- clean errors --------------------------------------------------------------------------------
@pytest.mark.parametrize("item,needle", [
    ("network.n_rec=inf", "network.n_rec must be an integer"),
    ("network.n_rec=[1", "--set network.n_rec"),
    ("network.n_rec=1e12", "network.n_rec must be <= 100000"),
    ("train.batch_size=10000000", "GiB"),
    ("train.batch_size=100000000", "GiB"),
    ("surrogate.peak=-1", "surrogate.peak must be positive"),
])
def test_bad_set_values_are_clean_errors(tmp_path, item, needle):
    r = _cli(["train", "--task", "xor", "--out", tmp_path / "r", "--set", item])
    _clean_error(r, needle)
    assert not (tmp_path / "r").exists()


def test_debug_flag_shows_the_traceback():
    from cognet.core.errors import ConfigError

    r = _cli(["--debug", "train", "--set", "network.n_rec=inf"])
    assert r.exit_code == 1 and isinstance(r.exception, ConfigError)
    _clean_error(_cli(["train", "--set", "network.n_rec=inf"]), "network.n_rec")  # and off again


def test_out_below_a_file_and_unwritable_dirs(tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("x")
    args = ["train", "--task", "xor", "--quiet"] + [a for s in SETS for a in ("--set", s)]
    _clean_error(_cli(args + ["--out", tmp_path / "afile" / "run"]), "afile", "is a file, not a folder")

    def read_only(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "ro"))

    monkeypatch.setattr(io.tempfile, "mkstemp", read_only)
    _clean_error(_cli(args + ["--out", tmp_path / "ro"]), "Read-only file system", "--out")


def test_full_disk_during_training_is_a_clean_error(tmp_path, monkeypatch):
    real = io.os.fsync

    def fsync(fd):
        if calls.setdefault("n", 0) >= 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        calls["n"] += 1
        real(fd)

    calls: dict = {}
    monkeypatch.setattr(io.os, "fsync", fsync)
    _clean_error(_cli(["train", "--task", "xor", "--out", tmp_path / "r", "--quiet"]
                      + [a for s in SETS for a in ("--set", s)]), "No space left on device")
    monkeypatch.setattr(io.os, "fsync", real)
    assert not [p for p in (tmp_path / "r").iterdir() if p.name.endswith(".tmp")]
    s = train(_cfg(), tmp_path / "r", progress=False)  # resumes once there is space again
    assert s["iterations"] == 4


def test_nested_files_and_summary_list(run, tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 800 + "]" * 800 + "\n")
    _clean_error(_cli(["train", "--config", deep]), "deep.yaml", "nested too deeply")
    _clean_error(_cli(["train", "--set", "task.n_bits=" + "[" * 800 + "]" * 800]), "task.n_bits")
    (run / "summary.json").write_text("[1, 2]")
    r = _cli(["train", "--task", "xor", "--out", run, "--quiet"] + [a for s in SETS for a in ("--set", s)])
    _clean_error(r, "summary.json must hold a JSON object, found a list")
    _clean_error(_cli(["compare", run, "--no-figures"]), "summary.json must hold a JSON object")
    (run / "summary.json").write_text("[" * 100000 + "]" * 100000)
    _clean_error(_cli(["compare", run, "--no-figures"]), "summary.json", "nested too deeply")


def test_rejected_train_does_not_touch_config(run):
    before = _snapshot(run)
    r = _cli(["train", "--task", "xor", "--out", run, "--set", "train.lr=0.02"] + [a for s in SETS for a in ("--set", s)])
    _clean_error(r, "different configuration")
    assert _snapshot(run) == before
    # without config.yaml, the checkpoint of the other configuration refuses before anything is written
    (run / "config.yaml").unlink()
    (run / "summary.json").unlink()
    before = _snapshot(run)
    r = _cli(["train", "--task", "xor", "--out", run, "--set", "train.lr=0.02"] + [a for s in SETS for a in ("--set", s)])
    _clean_error(r, "checkpoint.safetensors belongs to a different configuration")
    assert _snapshot(run) == before


def test_sweep_duplicate_axis_is_an_error(tmp_path):
    _clean_error(_cli(["sweep", "--axis", "seed=0", "--axis", "seed=1", "--out", tmp_path / "s"]),
                 "--axis seed is given twice")
    assert not (tmp_path / "s").exists()


def test_device_auto_and_cpu_share_the_hash():
    from cognet.training.trainer import config_hash

    if torch.cuda.is_available():
        pytest.skip("auto resolves to cuda here")
    assert config_hash(_cfg("train.device=auto")) == config_hash(_cfg("train.device=cpu")) == config_hash(_cfg())


# -- happy-path items -----------------------------------------------------------------------------
def test_config_yaml_names_the_surrogate_width_used(trained):
    import yaml

    text = (trained / "config.yaml").read_text()
    assert "width: 0.0  # 0 = the triangle default: width 1 used" in text
    assert yaml.safe_load(text)["surrogate"]["width"] == 0.0  # the value (and the run hash) unchanged


def test_task_script_help_hides_task_and_accepts_h(capsys):
    from cognet.cli.task_script import run

    for flag in ("-h", "--help"):
        with pytest.raises(SystemExit) as exc:
            run("store-recall", [flag])
        assert exc.value.code == 0
        out = capsys.readouterr().out
        assert "Usage: python -m tasks.store_recall" in out and "--set KEY=VALUE" in out
        assert "--task TEXT" not in out


def test_reproduce_prints_an_estimate_first(tmp_path):
    args = ["reproduce", "--out", tmp_path / "rep", "--task", "xor", "--rule", "bptt"] + [
        a for s in SETS for a in ("--set", s)]
    r = _cli(args + ["--estimate", "--json"])
    assert r.exit_code == 0, r.output
    est = json.loads(r.stdout)["estimate"]
    assert est["n_runs"] == 1 and est["runs"][0]["iterations"] == 4 and est["runs"][0]["s_per_iteration"] > 0
    assert "estimate: 1 of 1 runs to train" in r.stderr
    assert not (tmp_path / "rep").exists()  # measured in memory, nothing written
    _clean_error(_cli(args + ["--max-hours", "1e-9"]), "exceeds --max-hours")


def test_compare_tells_configs_apart(trained, tmp_path, monkeypatch):
    from analysis import compare, plots

    other = tmp_path / "lr"
    train(_cfg("train.lr=0.02"), other, progress=False)
    seed1 = tmp_path / "s1"
    train(_cfg("seed=1"), seed1, progress=False)
    seen = {}
    monkeypatch.setattr(plots, "compare_bars", lambda path, rows: seen.setdefault("bars", rows) and path)
    monkeypatch.setattr(plots, "learning_curves", lambda path, curves, **k: seen.setdefault("curves", curves) and path)
    res = compare.compare_runs([trained, other, seed1], tmp_path / "c")
    tags = [r["config"] for r in res["runs"]]
    assert tags[0] == tags[2] != tags[1] and all(len(t) == 6 for t in tags)  # the seed does not count
    groups = [r["group"] for r in seen["bars"]]
    assert groups[0] == groups[2] == f"bptt [{tags[0]}]" and groups[1] == f"bptt [{tags[1]}]"
    assert len(seen["curves"]) == 3  # one curve per run, none overwritten
    table = compare.format_table(res["runs"])
    assert "config" in table[0] and tags[1] in table[2]


def test_report_places_the_run(run):
    from analysis.run import analyze_run

    a = analyze_run(run, trials=4, figures=False)
    html = (run / "analysis-torch" / "report.html").read_text()
    assert "Brian2 agreement" in html and "not verified" in html
    assert "chance level" in html and "configuration" in html and "xor / bptt seed 0: 12 neurons" in html
    rate = dict((r[0], r[1]) for r in a["context"])["rate target"]
    assert rate.startswith("10 Hz; measured ") and rate.endswith(("met", "not met"))
    io.write_json(run / "verify.json", {
        "identical_trial_fraction": 1.0, "spike_match_fraction": 1.0, "first_divergence_ms": None, "trials": 4,
        "dt_ms": 1.0, "torch": {"metric": "sequence_accuracy", "accuracy": 0.5},
        "brian2": {"metric": "sequence_accuracy", "accuracy": 0.5}})
    analyze_run(run, trials=4, figures=False)
    md = (run / "analysis-torch" / "report.md").read_text()
    assert "| Brian2 agreement | 100.0 % identical trials, 100.00 % spikes matched, first divergence none" in md


def test_impossible_trial_counts_and_seeds_are_refused(run):
    before = _snapshot(run)
    _clean_error(_cli(["analyze", run, "--trials", "100000000000"]), "--trials 100000000000", "GiB")
    r = _cli(["eval", run, "--seed", "99999999999999999999999"])
    assert r.exit_code == 2 and "Traceback" not in r.output and "--seed" in r.stderr
    assert _snapshot(run) == before


def test_reproduce_caps_a_rules_budget_and_says_so(tmp_path):
    """--max-iterations RULE=N caps that rule's runs (printed with the estimate); other rules keep
    their budget; the capped run is the same configuration as --set train.iterations=N."""
    from cognet.experiments.reproduce import estimate
    from cognet.experiments.sweep import make_runs

    base = [a for s in SETS for a in ("--set", s)]
    args = ["reproduce", "--out", tmp_path / "rep", "--task", "xor", "--rule", "bptt", "--rule", "eprop-random"] + base
    r = _cli(args + ["--estimate", "--json", "--max-iterations", "eprop-random=2"])
    assert r.exit_code == 0, r.output
    est = json.loads(r.stdout)["estimate"]
    its = {row["rule"]: row["iterations"] for row in est["runs"]}
    assert its == {"bptt": 4, "eprop-random": 2}
    assert "xor/eprop-random: capped at 2 of its 4 iterations" in r.stderr
    # a cap above the budget changes nothing; a bare N caps every rule
    est = estimate(tmp_path / "rep", ("bptt",), ("xor",), 0, SETS, timed=1, caps={"*": 3})
    assert est["runs"][0]["iterations"] == 3 and est["capped"]
    est = estimate(tmp_path / "rep", ("bptt",), ("xor",), 0, SETS, timed=1, caps={"bptt": 99})
    assert est["runs"][0]["iterations"] == 4 and not est["capped"]
    # same run directory as an explicit --set train.iterations=2
    from cognet.experiments.reproduce import _runs

    (capped,), _ = _runs(tmp_path / "rep", ["xor"], ["eprop-random"], 0, SETS, {"eprop-random": 2})
    (explicit,) = make_runs([{"task": "xor", "rule": "eprop-random"}], lambda p: {**p, "seed": 0},
                            tmp_path / "rep" / "runs", base_sets=list(SETS) + ["train.iterations=2"],
                            rule_recommendations=True)
    assert capped.run_dir == explicit.run_dir
    for bad, msg in (("eprop-random=0", "whole number"), ("nope=5", "unknown rule"), ("x", "whole number")):
        _clean_error(_cli(args + ["--estimate", "--max-iterations", bad]), msg)
    _clean_error(_cli(args + ["--estimate", "--max-iterations", "3", "--max-iterations", "4"]), "given twice")
