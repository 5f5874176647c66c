"""ISI CV per trial, LV, CV2 (cross-checked against Elephant) and the spikes-per-symbol figures."""

from __future__ import annotations

import numpy as np
import pytest

from analysis import stats

DT = 1.0
pytestmark = pytest.mark.filterwarnings("ignore:The 'copy' argument in Quantity is deprecated")


def _isis(train01, dt=DT):
    return np.diff(np.flatnonzero(train01)).astype(np.float64) * dt


def test_per_trial_cv_lv_cv2_agree_with_elephant():
    from elephant.statistics import cv, cv2, lv

    rng = np.random.default_rng(3)
    trials, T, n = 9, 600, 5
    # neurons fire at a rate that differs from trial to trial: pooling inflates the CV
    rates = rng.uniform(10, 120, size=(trials, 1, n))
    z = (rng.random((trials, T, n)) < rates * DT * 1e-3).astype(np.uint8)
    per_trial = stats.isi_cv_per_trial(z, DT, min_isis=2)
    local = stats.isi_local_variation(z, DT, min_pairs=2)
    for i in range(n):
        isis = [_isis(z[t, :, i]) for t in range(trials)]
        used = [x for x in isis if len(x) >= 2]
        assert per_trial[i] == pytest.approx(np.mean([cv(x) for x in used]), abs=1e-12)
        # LV and CV2: the pair-weighted mean of Elephant's per-trial values
        w = np.array([len(x) - 1 for x in used], dtype=float)
        assert local["lv"][i] == pytest.approx(np.average([lv(x) for x in used], weights=w), abs=1e-12)
        assert local["cv2"][i] == pytest.approx(np.average([cv2(x) for x in used], weights=w), abs=1e-12)
        assert local["pairs"][i] == w.sum()
    # one trial: exactly Elephant's values
    one = stats.isi_local_variation(z[:1], DT, min_pairs=1)
    assert one["lv"][0] == pytest.approx(lv(_isis(z[0, :, 0])), abs=1e-12)
    assert one["cv2"][0] == pytest.approx(cv2(_isis(z[0, :, 0])), abs=1e-12)
    # rate differences across trials raise the pooled CV above the within-trial measures
    pooled = stats.isi_cv(z, DT)
    assert np.nanmedian(pooled) > np.nanmedian(per_trial) + 0.1
    assert abs(np.nanmedian(local["lv"]) - 1.0) < 0.15 and abs(np.nanmedian(local["cv2"]) - 1.0) < 0.15


def test_regular_and_too_few_intervals():
    z = np.zeros((2, 200, 3), np.uint8)
    z[:, ::10, 0] = 1  # regular: CV, LV, CV2 all 0
    z[0, [5, 50], 1] = 1  # one interval only: every measure undefined
    z[:, [3, 30], 2] = 1  # one interval per trial: the pooled CV exists, per-trial and LV do not
    local = stats.isi_local_variation(z, DT)
    assert local["lv"][0] == 0 and local["cv2"][0] == 0 and stats.isi_cv_per_trial(z, DT)[0] == 0
    assert np.isnan(local["lv"][1:]).all() and np.isnan(local["cv2"][1:]).all()
    assert np.isnan(stats.isi_cv_per_trial(z, DT)[1:]).all()
    assert stats.isi_cv(z, DT, min_isis=2)[2] == 0.0  # two equal intervals of 27 ms, pooled


def test_spikes_per_symbol_counts():
    z = np.zeros((2, 40, 4), np.uint8)  # 2 trials, two 20-step symbols, 4 neurons
    z[0, 3, 0] = 1
    z[0, [1, 7], 1] = 1  # 2 spikes in symbol 0
    z[1, 25, 2] = 1
    s = stats.symbol_step_counts(z, DT, 20, n_answers=2)
    cells = 2 * 2 * 4
    assert s["spikes_per_neuron_per_symbol"] == pytest.approx(4 / cells)
    assert s["fraction_1"] == pytest.approx(2 / cells) and s["fraction_2_or_more"] == pytest.approx(1 / cells)
    assert s["fraction_0"] == pytest.approx(13 / cells)
    assert s["population_spikes_per_symbol"] == pytest.approx(4 / 4)
    assert s["population_spikes_per_step"] == pytest.approx(2 / 40)
    assert s["spikes_per_answer"] == pytest.approx(1.0) and s["symbol_ms"] == 20


def test_firing_regime_and_report_carry_the_new_measures():
    from analysis.report import summary_rows

    rng = np.random.default_rng(0)
    z = (rng.random((6, 100, 8)) < 0.05).astype(np.uint8)
    a = stats.firing_regime(z, DT, 20, {"all": [(0, 100)]}, windows=[(90, 100)])
    for key in ("isi_cv_per_trial", "isi_lv", "isi_cv2"):
        assert a[key]["n"] > 0 and 0 < a[key]["median"] < 2
    assert a["symbol_steps"]["spikes_per_neuron_per_symbol"] == pytest.approx(z.mean() * 20)
    assert a["symbol_steps"]["spikes_per_answer"] == pytest.approx(z.sum() / 6)
    names = [r[0] for r in summary_rows(a)]
    for name in ("ISI CV (pooled)", "ISI CV (per trial)", "ISI LV", "ISI CV2", "spikes per neuron per symbol",
                 "population spikes per symbol", "spikes per answer"):
        assert name in names
    defs = {r[0]: r[2] for r in summary_rows(a)}
    assert "Shinomoto" in defs["ISI LV"] and "Holt" in defs["ISI CV2"]
