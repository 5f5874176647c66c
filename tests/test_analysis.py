"""Tests of analysis/: statistics on synthetic spike trains with known answers, agreement with
Elephant on the same trains, figure sizes, and `cognet analyze` / `cognet compare` end to end
on a briefly trained run."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from analysis import stats

DT = 1.0
# elephant 1.2 passes quantities' deprecated copy= argument; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:The 'copy' argument in Quantity is deprecated")


def poisson(rng, trials, T, n, rate_hz, dt=DT):
    return (rng.random((trials, T, n)) < rate_hz * dt * 1e-3).astype(np.uint8)


def neo_block(z, dt=DT):
    """Spike trains ``z [trials, T, n]`` as a ``neo.Block`` through cognet's own converter
    (cognet.interchange.neo_io: one segment per trial, one group per neuron), so the Elephant
    cross-checks also check the conversion."""
    import torch

    from cognet.interchange.neo_io import to_neo
    from cognet.training.records import SpikeRecord

    trials, T, _ = z.shape
    rec = SpikeRecord(z=torch.as_tensor(z), x=torch.zeros(trials, T, 0, dtype=torch.uint8),
                      logits=torch.zeros(0, trials, 1), target=torch.zeros(0, trials, 1),
                      mask=torch.zeros(0, trials, dtype=torch.bool), source="synthetic", task="none", dt_ms=dt,
                      windows=[], phases={})
    return to_neo(rec, inputs=False)


# -- known answers -----------------------------------------------------------------------------

def test_regular_train_has_cv_zero_and_poisson_has_cv_and_fano_near_one():
    z = np.zeros((3, 1000, 2), np.uint8)
    z[:, ::25, 0] = 1  # 40 Hz clock
    z[:, 5::10, 1] = 1
    assert np.allclose(stats.isi_cv(z, DT), 0.0)
    assert np.allclose(stats.firing_rates(z, DT), [40.0, 100.0])
    rng = np.random.default_rng(1)
    zp = poisson(rng, 200, 2000, 10, 20.0)
    cv = stats.isi_cv(zp, DT)
    assert np.all(np.abs(cv - 1.0) < 0.08), cv
    ff = stats.fano_factor(zp, 100)  # Bernoulli steps: var/mean = 1 - p = 0.98
    assert np.all(np.abs(ff - 0.98) < 0.1), ff
    # a clock locked to the trial start has no count variability across trials
    assert np.allclose(stats.fano_factor(z, 100), 0.0)


def test_silent_neurons_and_too_few_isis_give_nan():
    z = np.zeros((2, 100, 3), np.uint8)
    z[0, 10, 1] = 1
    z[0, [10, 30, 50, 70], 2] = 1
    cv = stats.isi_cv(z, DT)
    assert np.isnan(cv[0]) and np.isnan(cv[1]) and cv[2] == pytest.approx(0.0)
    ff = stats.fano_factor(z, 50)
    assert np.isnan(ff[0]) and np.isfinite(ff[1])


def test_isis_never_cross_trial_boundaries():
    z = np.zeros((2, 100, 1), np.uint8)
    z[0, [90, 95, 99], 0] = 1
    z[1, [0, 5, 9], 0] = 1  # a cross-trial ISI would be 1 step and give CV > 0
    assert stats.isi_cv(z, DT)[0] == pytest.approx(np.std([5, 4, 5, 4]) / 4.5)


def test_identical_trains_are_fully_synchronous_and_independent_ones_are_not():
    rng = np.random.default_rng(2)
    base = poisson(rng, 20, 1000, 1, 30.0)
    same = np.repeat(base, 16, axis=2)
    assert np.allclose(stats.golomb_chi(same, 5), 1.0)
    corr = stats.count_correlation(same, 20)
    assert corr["total"] == pytest.approx(1.0) and corr["noise"] == pytest.approx(1.0)
    indep = poisson(rng, 20, 1000, 64, 30.0)
    chi = stats.golomb_chi(indep, 5).mean()
    assert abs(chi - 1 / 8) < 0.05, chi  # about 1/sqrt(n)
    assert abs(stats.count_correlation(indep, 20)["total"]) < 0.02


def test_sparsity_band_and_silent_fractions_and_phase_rates():
    z = np.zeros((4, 100, 10), np.uint8)
    z[:, ::10, :3] = 1  # neurons 0-2 fire once per 10-ms bin (100 Hz); 3-9 silent
    assert np.allclose(stats.active_fraction(z, 10), 0.3)
    z2 = z.copy()
    z2[:, 50:, 3] = 1  # neuron 3: 500 Hz in the second half, silent in the first
    z2[:, 0, 4] = 1  # neuron 4: 10 Hz
    r = stats.firing_regime(z2, DT, 10, {"store": [(0, 50)], "recall": [(50, 100)]}, windows=[(90, 100)])
    assert r["silent_fraction"] == pytest.approx(5 / 10)
    assert r["band_2_60hz_fraction"] == pytest.approx(1 / 10)
    pr = r["phase_rates"]
    assert pr["store"]["per_neuron_hz"][3] == 0.0 and pr["recall"]["per_neuron_hz"][3] == pytest.approx(1000.0)
    assert pr["store"]["per_neuron_hz"][4] == pytest.approx(1000.0 / 50)
    assert set(pr) == {"store", "recall", "answer"}
    assert r["sparsity"]["by_phase"]["recall"] == pytest.approx(0.4)


def test_omega_squared_matches_scipy_anova_and_detects_selectivity():
    from scipy.stats import f_oneway

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, 300)
    selective = labels * 2.0 + rng.normal(0, 0.5, 300)
    noise = rng.poisson(2.0, 300).astype(float)
    om, F, k = stats.omega_squared(np.stack([selective, noise], 1), labels)
    assert k == 3
    for j, col in enumerate((selective, noise)):
        ref = f_oneway(*[col[labels == g] for g in range(3)]).statistic
        assert F[j] == pytest.approx(ref, rel=1e-10)
        N = len(col)
        assert om[j] == pytest.approx(2 * (ref - 1) / (2 * (ref - 1) + N), rel=1e-10)
    assert om[0] > 0.8 and abs(om[1]) < 0.03


def test_selectivity_separates_symbol_and_position_coding():
    rng = np.random.default_rng(4)
    N, S, k = 200, 6, 10
    active = np.zeros((N, S, 2), np.uint8)
    sym = rng.integers(0, 2, (N, S))
    active[np.arange(N)[:, None], np.arange(S)[None], sym] = 1
    z = np.zeros((N, S * k, 3), np.uint8)
    for s in range(S):
        block = slice(s * k, (s + 1) * k)
        z[:, block, 0] = (rng.random((N, k)) < np.where(sym[:, s:s + 1] == 1, 0.5, 0.05))  # symbol neuron
        z[:, block, 1] = rng.random((N, k)) < 0.05 + 0.08 * s  # position (ramp) neuron
        z[:, block, 2] = rng.random((N, k)) < 0.2  # unselective
    sel = stats.selectivity(z, k, active, ["s=0", "s=1"])
    assert sel["symbol"]["omega2"][0] > 0.5 and sel["symbol"]["omega2"][1] < 0.05 and sel["symbol"]["omega2"][2] < 0.05
    assert sel["position"]["omega2"][1] > 0.3 and sel["position"]["omega2"][2] < 0.05
    assert sel["cue"] is None  # no task cue channel
    cue_active = np.concatenate([active, np.repeat(sym[:, :1, None], S, 1)], axis=2)  # cue = first symbol
    sel2 = stats.selectivity(z, k, cue_active, ["s=0", "s=1", "cue=dup"])
    assert sel2["cue"] is not None and sel2["cue"]["steps_used"] == S


# -- agreement with Elephant -------------------------------------------------------------------

def test_rates_isi_cv_fano_and_correlation_agree_with_elephant():
    import quantities as pq
    from elephant.conversion import BinnedSpikeTrain
    from elephant.spike_train_correlation import correlation_coefficient
    from elephant.statistics import cv, fanofactor, isi, mean_firing_rate
    from scipy.stats import variation

    from cognet.interchange.neo_io import recurrent_trains

    rng = np.random.default_rng(5)
    z = poisson(rng, 12, 800, 6, 25.0)
    z[:, :, 5] = 0
    z[:, ::40, 5] = 1  # one regular neuron
    block = neo_block(z)
    trial0 = recurrent_trains(block.segments[0])  # a list, as Elephant wants
    rates = stats.firing_rates(z[:1], DT)
    for i in range(6):
        assert rates[i] == pytest.approx(float(mean_firing_rate(trial0[i]).rescale(pq.Hz)), rel=1e-12)
    # ISI CV: one trial, and pooled over trials (a neuron's group holds its train of every trial)
    one = stats.isi_cv(z[:1], DT, min_isis=2)
    pooled = stats.isi_cv(z, DT, min_isis=2)
    for i in range(6):
        assert one[i] == pytest.approx(cv(isi(trial0[i])), abs=1e-12)
        all_isis = np.concatenate([np.asarray(isi(st).magnitude) for st in block.groups[i].spiketrains])
        assert pooled[i] == pytest.approx(variation(all_isis), abs=1e-12)
    # Fano factor over whole-trial counts across trials
    ff = stats.fano_factor(z, 800)
    for i in range(5):
        assert len(block.groups[i].spiketrains) == 12
        assert ff[i] == pytest.approx(fanofactor(block.groups[i].spiketrains), rel=1e-12)
    # spike-count correlation on one trial, 20-ms bins
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = BinnedSpikeTrain(trial0[:5], bin_size=20 * pq.ms)
        ref = correlation_coefficient(b)
    mine = stats.correlation_matrix(stats.window_counts(z[:1, :, :5], 20)[0])
    assert np.allclose(mine, ref, atol=1e-10, equal_nan=True)
    off = ref[~np.eye(5, dtype=bool)]
    assert stats.count_correlation(z[:1, :, :5], 20)["total"] == pytest.approx(off.mean(), abs=1e-10)


def test_synchrony_orders_like_elephant_spike_contrast():
    import quantities as pq
    from elephant.spike_train_synchrony import spike_contrast

    from cognet.interchange.neo_io import recurrent_trains

    rng = np.random.default_rng(6)
    base = poisson(rng, 1, 2000, 1, 20.0)[0, :, 0]
    jitter = np.zeros((1, 2000, 8), np.uint8)
    for i in range(8):
        jitter[0, :, i] = np.roll(base, int(rng.integers(-2, 3)))
    indep = poisson(rng, 1, 2000, 8, 20.0)
    chi_j, chi_i = stats.golomb_chi(jitter, 10)[0], stats.golomb_chi(indep, 10)[0]
    sc_j = spike_contrast(recurrent_trains(neo_block(jitter).segments[0]), t_start=0 * pq.ms, t_stop=2000 * pq.ms)
    sc_i = spike_contrast(recurrent_trains(neo_block(indep).segments[0]), t_start=0 * pq.ms, t_stop=2000 * pq.ms)
    assert chi_j > 0.8 > 0.5 > chi_i
    assert sc_j > sc_i


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="trials, T, n"):
        stats.firing_rates(np.zeros((3, 4)), DT)
    with pytest.raises(ValueError, match="window_steps"):
        stats.window_counts(np.zeros((1, 10, 2)), 0)
    with pytest.raises(ValueError, match="longer than the trial"):
        stats.window_counts(np.zeros((1, 10, 2)), 20)


# -- figures -----------------------------------------------------------------------------------

def _png(path):
    import matplotlib.image as mpimg

    return mpimg.imread(str(path))


def _png_shape(path):
    return _png(path).shape


def test_plots_write_nonempty_pngs_of_expected_size(tmp_path):
    from analysis import plots

    rng = np.random.default_rng(7)
    z = poisson(rng, 1, 160, 40, 20.0)[0]
    x = poisson(rng, 1, 160, 15, 100.0)[0]
    windows = [(90, 100), (110, 120), (130, 140), (150, 160)]
    p = plots.raster_figure(tmp_path / "r.png", x, z, DT, ["bit=0", "bit=1", "recall"], 5, rng.normal(size=(160, 1)),
                            windows, rng.normal(size=(4, 1)), rng.integers(0, 2, (4, 1)).astype(float),
                            {"store": [(0, 80)], "recall": [(80, 160)]}, alif=np.arange(40) >= 20, title="t")
    img = _png(p)
    assert img.shape[:2] == (800, 1200)
    assert img[..., :3].std() > 0.05  # not a blank canvas
    rates = rng.uniform(0, 30, 40)
    assert _png_shape(plots.rate_histogram(tmp_path / "h.png", rates))[:2] == (350, 500)
    assert _png_shape(plots.cv_vs_rate(tmp_path / "c.png", rates, rng.uniform(0.5, 2, 40)))[:2] == (350, 500)
    rows = [{"iteration": i, "task_loss": 1 / i, "bit_accuracy": 1 - 1 / i, "mean_rate_hz": 10.0} for i in range(1, 60)]
    rows.append({"iteration": 50, "eval": True, "bit_accuracy": 0.9, "mean_rate_hz": 10.0})
    assert _png_shape(plots.learning_curves(tmp_path / "l.png", {"a": rows, "b": rows}, "bit_accuracy"))[:2] == (360, 1300)


# -- end to end on a briefly trained run --------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    import torch

    from cognet.training.config import build_config
    from cognet.training.trainer import train

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("run") / "copy"
    cfg = build_config("copy", "bptt", 0, None, ["network.n_rec=24", "train.iterations=4", "train.batch_size=8",
                                                 "train.eval_every=2", "train.eval_trials=16", "task.n_bits=3"])
    train(cfg, out, progress=False)
    return out


def test_analyze_run_writes_json_figures_and_report(tiny_run):
    from analysis import analyze_run

    a = analyze_run(tiny_run, trials=24)
    assert (tiny_run / "spikes-torch.safetensors").exists() and a["record"]["created"]
    out = tiny_run / "analysis-torch"
    data = json.loads((out / "analysis.json").read_text())
    for key in ("rate_hz", "isi_cv", "fano_factor", "synchrony", "silent_fraction", "band_2_60hz_fraction",
                "sparsity", "phase_rates", "selectivity"):
        assert key in data
    assert data["trials"] == 24 and len(data["rate_hz"]["per_neuron"]) == 24
    assert set(data["phase_rates"]) == {"store", "recall", "answer"}
    for name in ("raster", "rates", "cv_rate", "learning"):
        assert (out / f"{name}.png").stat().st_size > 5000
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4 and "ISI CV" in html
    assert "](raster.png)" in (out / "report.md").read_text()
    assert a["report"] == str(out / "report.html")
    # the rate in the record agrees with the spikes it holds
    from cognet.training.records import load_record

    rec = load_record(tiny_run / "spikes-torch.safetensors")
    assert data["rate_hz"]["mean"] == pytest.approx(float(rec.z.float().mean()) * 1000 / rec.dt_ms)
    # the readout trace of the raster figure reproduces the recorded window logits
    from analysis.run import _load_model, readout_trace

    net, _ = _load_model(tiny_run)
    y = readout_trace(net, rec.z[0].numpy())
    means = np.stack([y[a:b].mean(0) for a, b in rec.windows])
    assert np.allclose(means, rec.logits[:, 0].numpy(), atol=1e-4)
    # a second call reuses the record
    assert not analyze_run(tiny_run, trials=10)["record"]["created"]


def test_analyze_brian2_without_verify_says_what_to_do(tiny_run):
    from analysis import analyze_run

    with pytest.raises(FileNotFoundError, match="cognet verify"):
        analyze_run(tiny_run, source="brian2")


def test_cli_analyze_and_compare(tiny_run, tmp_path):
    from click.testing import CliRunner

    from cognet.cli.main import main

    r = CliRunner().invoke(main, ["analyze", str(tiny_run), "--json", "--trials", "16", "--out", str(tmp_path / "a")])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["trials"] == 16
    r = CliRunner().invoke(main, ["compare", str(tiny_run), str(tiny_run), "--out", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    assert "peak MB" in r.output and "copy" in r.output
    assert (tmp_path / "c" / "accuracy_rate.png").exists() and (tmp_path / "c" / "learning.png").exists()
    r = CliRunner().invoke(main, ["compare", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "summary.json" in r.output
    r = CliRunner().invoke(main, ["analyze", str(tiny_run), "--source", "brian2"])
    assert r.exit_code == 2 and "cognet verify" in r.output


def test_analyze_read_only_run_dir_into_out_elsewhere(tiny_run, tmp_path, monkeypatch):
    """A run directory that cannot be written (archive, read-only mount) is analysed with --out
    elsewhere: the lock and staging move to the output folder and the run directory is left as it was."""
    import errno
    import shutil
    from pathlib import Path

    import analysis.run as arun
    from analysis import analyze_run

    run = tmp_path / "archived"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("spikes-*", "analysis-*", ".lock"))
    before = sorted(p.name for p in run.iterdir())
    real_lock = arun.run_lock

    def lock(d):  # as root a chmod does not stop writes: refuse the run directory as a read-only mount would
        if Path(d).resolve() == run.resolve():
            raise PermissionError(errno.EROFS, "Read-only file system", str(Path(d) / ".lock"))
        return real_lock(d)

    monkeypatch.setattr(arun, "run_lock", lock)
    run.chmod(0o555)
    try:
        a = analyze_run(run, trials=8, out_dir=tmp_path / "elsewhere", figures=False)
        assert sorted(p.name for p in run.iterdir()) == before  # nothing cached, no lock, no staging left
    finally:
        run.chmod(0o755)
    data = json.loads((tmp_path / "elsewhere" / "analysis.json").read_text())
    assert data["trials"] == 8 and a["record"]["created"] and a["record"]["path"] is None
    assert not any(p.name.startswith(".") and p.is_dir() for p in (tmp_path / "elsewhere").iterdir())
    # without --out the same refusal is an error, not a silent fallback
    with pytest.raises(PermissionError):
        analyze_run(run, trials=8, figures=False)
