"""Firing-regime statistics on spike arrays ``z[trials, T, n]`` (0/1, time step ``dt_ms``).

Array-native: everything works on numpy arrays, with no neo/quantities objects. The tests
cross-check each statistic that Elephant also has against Elephant on the same spike trains
(``tests/test_analysis.py``). Spike ``k`` of a train sits at time ``t * dt_ms`` (step index t).

Definitions (``N`` trials, ``T`` steps, ``n`` neurons):

* rate: ``r_i = (sum over trials and steps of z) / (N T dt)`` in Hz, per neuron.
* ISI CV (pooled): inter-spike intervals are taken inside each trial (never across a trial
  boundary) and pooled over trials per neuron; ``CV_i = std(ISI) / mean(ISI)`` with the
  population std (ddof=0, as ``elephant.statistics.cv`` / ``scipy.stats.variation``).
  Neurons with fewer than ``min_isis`` intervals get NaN. Trials differ in their input, so
  pooling mixes intervals of different rates: this CV measures rate differences across
  trials as much as irregularity.
* ISI CV (per trial): the same CV computed within each trial that has >= ``min_isis``
  (default 2) intervals, then averaged over those trials (unweighted), per neuron.
* LV, local variation (Shinomoto et al. 2003) and CV2 (Holt et al. 1996): for consecutive
  intervals ``I_k, I_{k+1}`` of the same trial, ``r_k = (I_{k+1} - I_k) / (I_{k+1} + I_k)``;
  ``LV = 3 mean_k r_k^2`` and ``CV2 = 2 mean_k |r_k|``, the mean taken over all pairs of all
  trials (the pair-weighted mean of ``elephant.statistics.lv`` / ``cv2`` per trial). Both
  compare only neighbouring intervals, so slow rate changes do not inflate them; both are
  1 for a Poisson process and 0 for a regular train. NaN with fewer than ``min_pairs`` (2) pairs.
* Spikes per symbol step: counts ``c[trial, s, i]`` per symbol step and neuron; reported:
  the mean of ``c`` (spikes per neuron per symbol), the fraction of neuron-steps with 0, 1
  and >= 2 spikes, population spikes per symbol step (``sum_i c``, mean over trials and
  steps) and per time step, and spikes per answer (all recurrent spikes of a trial divided
  by its answer windows). At 10 Hz and 20 ms symbols a neuron fires 0.2 spikes per symbol:
  a rate code, which needs several spikes per neuron per symbol, is impossible.
* Fano factor: spike counts ``c[trial, w, i]`` in consecutive windows of ``window_steps``;
  per window and neuron ``F = var_trials(c) / mean_trials(c)`` (ddof=0, as
  ``elephant.statistics.fanofactor`` over the trials' spike trains); per neuron the mean
  over windows where it spiked at all. Trials of a task differ in their input, so this is
  the variability *across trials at a fixed time in the trial*.
* Spike-count correlation: counts in bins of ``bin_steps``, observations = (trial, bin);
  Pearson ``r`` between neuron pairs (neurons whose counts vary); ``total`` is the mean
  off-diagonal r (as ``elephant.spike_train_correlation.correlation_coefficient``
  on one trial), ``noise`` the same after subtracting each bin's trial mean (the PSTH),
  which removes correlations locked to the task timing.
* Synchrony (Golomb 2007 chi): per trial, counts ``c_i(b)`` in bins, population mean
  ``A(b) = mean_i c_i(b)``; ``chi^2 = Var_b(A) / mean_i Var_b(c_i)``; chi in [0, 1], 1 for
  identical trains, about ``1/sqrt(n)`` for independent ones. Reported: mean chi over trials.
* Silent fraction: neurons with no spike at all; band fraction: ``2 <= r_i <= 60`` Hz.
* Sparsity: fraction of neurons with at least one spike in a bin of ``bin_steps``, averaged
  over bins and trials (also per task phase).
* Phase rates: population and per-neuron rates over the steps of each named phase
  (e.g. ``store``/``recall``, ``operands``/``carry``) and over the answer windows.
* Selectivity: see :func:`selectivity`.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

BAND_HZ = (2.0, 60.0)


def _check(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z)
    if z.ndim != 3:
        raise ValueError(f"spikes must be an array [trials, T, n], got shape {z.shape}")
    return z


def _positive_int(name: str, value: int) -> int:
    if int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def firing_rates(z: np.ndarray, dt_ms: float) -> np.ndarray:
    """Per-neuron rate in Hz, averaged over trials and time: ``[n]``."""
    z = _check(z)
    return z.sum(axis=(0, 1), dtype=np.float64) / (z.shape[0] * z.shape[1] * dt_ms * 1e-3)


def population_rate(z: np.ndarray, dt_ms: float) -> np.ndarray:
    """Population rate over time (Hz), averaged over trials and neurons: ``[T]``."""
    z = _check(z)
    return z.mean(axis=(0, 2), dtype=np.float64) * (1000.0 / dt_ms)


def isi_cv(z: np.ndarray, dt_ms: float, min_isis: int = 3) -> np.ndarray:
    """Per-neuron coefficient of variation of ISIs pooled over trials (NaN if < min_isis)."""
    z = _check(z)
    n = z.shape[2]
    neuron, trial, t = np.nonzero(np.transpose(z, (2, 0, 1)))  # sorted by neuron, trial, t
    same = (neuron[1:] == neuron[:-1]) & (trial[1:] == trial[:-1])
    isi = (t[1:] - t[:-1])[same].astype(np.float64) * dt_ms
    owner = neuron[1:][same]
    count = np.bincount(owner, minlength=n).astype(np.float64)
    s1 = np.bincount(owner, weights=isi, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / count
        dev2 = np.bincount(owner, weights=(isi - mean[owner]) ** 2, minlength=n)
        cv = np.sqrt(dev2 / count) / mean
    cv[count < max(1, min_isis)] = np.nan
    return cv


def _trial_isis(z: np.ndarray, dt_ms: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All within-trial ISIs (ms) in order, with their neuron and trial."""
    neuron, trial, t = np.nonzero(np.transpose(_check(z), (2, 0, 1)))  # sorted by neuron, trial, t
    same = (neuron[1:] == neuron[:-1]) & (trial[1:] == trial[:-1])
    return (t[1:] - t[:-1])[same].astype(np.float64) * dt_ms, neuron[1:][same], trial[1:][same]


def isi_cv_per_trial(z: np.ndarray, dt_ms: float, min_isis: int = 2) -> np.ndarray:
    """Per-neuron ISI CV computed within each trial (>= min_isis intervals), averaged over trials."""
    z = _check(z)
    N, n = z.shape[0], z.shape[2]
    isi, neuron, trial = _trial_isis(z, dt_ms)
    group = neuron * N + trial
    count = np.bincount(group, minlength=n * N).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(group, weights=isi, minlength=n * N) / count
        dev2 = np.bincount(group, weights=(isi - mean[group]) ** 2, minlength=n * N)
        cv = np.sqrt(dev2 / count) / mean
    ok = (count >= max(1, min_isis)).reshape(n, N)
    cv = np.where(ok, cv.reshape(n, N), 0.0)
    k = ok.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(k > 0, cv.sum(axis=1) / np.maximum(k, 1), np.nan)


def isi_local_variation(z: np.ndarray, dt_ms: float, min_pairs: int = 2) -> Dict[str, np.ndarray]:
    """Per-neuron LV (Shinomoto et al. 2003) and CV2 (Holt et al. 1996) over consecutive
    within-trial ISI pairs (see the module docstring): ``{"lv": [n], "cv2": [n], "pairs": [n]}``."""
    z = _check(z)
    n = z.shape[2]
    isi, neuron, trial = _trial_isis(z, dt_ms)
    same = (neuron[1:] == neuron[:-1]) & (trial[1:] == trial[:-1])
    a, b, owner = isi[:-1][same], isi[1:][same], neuron[1:][same]
    r = (b - a) / (a + b)
    pairs = np.bincount(owner, minlength=n).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        lv = 3.0 * np.bincount(owner, weights=r * r, minlength=n) / pairs
        cv2 = 2.0 * np.bincount(owner, weights=np.abs(r), minlength=n) / pairs
    few = pairs < max(1, min_pairs)
    lv[few] = np.nan
    cv2[few] = np.nan
    return {"lv": lv, "cv2": cv2, "pairs": pairs}


def symbol_step_counts(z: np.ndarray, dt_ms: float, steps_per_symbol: int, n_answers: int = 0) -> Dict[str, Any]:
    """Spikes per neuron per symbol step and the derived budgets (see the module docstring)."""
    c = window_counts(z, steps_per_symbol)  # [N, S, n]
    N, S, n = c.shape
    total_per_trial = _check(z).sum(axis=(1, 2), dtype=np.float64)
    return {
        "symbol_ms": steps_per_symbol * dt_ms,
        "spikes_per_neuron_per_symbol": float(c.mean()),
        "fraction_0": float((c == 0).mean()), "fraction_1": float((c == 1).mean()),
        "fraction_2_or_more": float((c >= 2).mean()),
        "population_spikes_per_symbol": float(c.sum(axis=2).mean()),
        "population_spikes_per_step": float(total_per_trial.mean() / z.shape[1]),
        "answers_per_trial": int(n_answers),
        "spikes_per_answer": float(total_per_trial.mean() / n_answers) if n_answers else None,
    }


def window_counts(z: np.ndarray, window_steps: int) -> np.ndarray:
    """Spike counts in consecutive windows: ``[trials, T // window_steps, n]`` (a ragged tail is dropped)."""
    z = _check(z)
    w = _positive_int("window_steps", window_steps)
    nw = z.shape[1] // w
    if nw < 1:
        raise ValueError(f"window of {w} steps is longer than the trial ({z.shape[1]} steps)")
    return z[:, : nw * w].reshape(z.shape[0], nw, w, z.shape[2]).sum(axis=2, dtype=np.float64)


def fano_factor(z: np.ndarray, window_steps: int) -> np.ndarray:
    """Per-neuron Fano factor of spike counts across trials, averaged over windows (NaN if silent)."""
    c = window_counts(z, window_steps)
    mean = c.mean(axis=0)
    var = c.var(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ff = np.where(mean > 0, var / np.where(mean > 0, mean, 1.0), np.nan)
    out = np.full(c.shape[2], np.nan)
    seen = np.isfinite(ff).any(axis=0)
    out[seen] = np.nanmean(ff[:, seen], axis=0)
    return out


def _corr_mean(obs: np.ndarray) -> Tuple[float, np.ndarray, np.ndarray]:
    """Mean off-diagonal Pearson r of the columns of ``obs`` that vary; also the matrix and which columns."""
    sd = obs.std(axis=0)
    keep = sd > 0
    if keep.sum() < 2:
        return float("nan"), np.zeros((0, 0)), keep
    x = obs[:, keep]
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    r = (x.T @ x) / x.shape[0]
    k = r.shape[0]
    off = r[~np.eye(k, dtype=bool)]
    return float(off.mean()), r, keep


def count_correlation(z: np.ndarray, bin_steps: int) -> Dict[str, Any]:
    """Pairwise spike-count correlations (see module docstring): total and noise correlation."""
    c = window_counts(z, bin_steps)  # [N, B, n]
    total, _, keep = _corr_mean(c.reshape(-1, c.shape[2]))
    resid = c - c.mean(axis=0, keepdims=True)
    noise, _, _ = _corr_mean(resid.reshape(-1, c.shape[2]))
    return {"bin_steps": int(bin_steps), "total": total, "noise": noise, "neurons_used": int(keep.sum())}


def correlation_matrix(counts: np.ndarray) -> np.ndarray:
    """Pearson correlation matrix of count columns ``[observations, n]`` (NaN rows for constant columns)."""
    counts = np.asarray(counts, dtype=np.float64)
    _, r, keep = _corr_mean(counts)
    out = np.full((counts.shape[1], counts.shape[1]), np.nan)
    idx = np.flatnonzero(keep)
    if idx.size >= 2:
        out[np.ix_(idx, idx)] = r
    return out


def golomb_chi(z: np.ndarray, bin_steps: int) -> np.ndarray:
    """Golomb's synchrony chi per trial ``[trials]`` (NaN where no neuron's counts vary)."""
    c = window_counts(z, bin_steps)  # [N, B, n]
    pop_var = c.mean(axis=2).var(axis=1)
    ind_var = c.var(axis=1).mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ind_var > 0, np.sqrt(pop_var / np.where(ind_var > 0, ind_var, 1.0)), np.nan)


def active_fraction(z: np.ndarray, bin_steps: int) -> np.ndarray:
    """Fraction of neurons with >= 1 spike per bin: ``[trials, bins]``."""
    return (window_counts(z, bin_steps) > 0).mean(axis=2)


def _steps_of(ranges: Sequence[Sequence[int]], T: int) -> np.ndarray:
    idx = [np.arange(max(0, a), min(T, b)) for a, b in ranges]
    return np.concatenate(idx) if idx else np.zeros(0, dtype=int)


def phase_rates(z: np.ndarray, dt_ms: float, phases: Dict[str, Sequence[Sequence[int]]]) -> Dict[str, Any]:
    """Population mean and per-neuron rates (Hz) over the steps of each named phase."""
    z = _check(z)
    out: Dict[str, Any] = {}
    for name, ranges in phases.items():
        steps = _steps_of(ranges, z.shape[1])
        if steps.size == 0:
            continue
        per = z[:, steps].sum(axis=(0, 1), dtype=np.float64) / (z.shape[0] * steps.size * dt_ms * 1e-3)
        out[name] = {"steps": int(steps.size), "mean_hz": float(per.mean()), "per_neuron_hz": per}
    return out


def omega_squared(counts: np.ndarray, labels: np.ndarray) -> Tuple[np.ndarray, np.ndarray, int]:
    """One-way ANOVA effect size per column.

    ``counts [N, n]``, ``labels [N]`` (group of each observation). With ``k`` groups::

        SS_b = sum_g N_g (mean_g - mean)^2,  SS_w = sum (x - mean_g)^2,  MS_w = SS_w / (N - k)
        F = (SS_b / (k - 1)) / MS_w
        omega^2 = (SS_b - (k - 1) MS_w) / (SS_b + SS_w + MS_w)

    Returns ``(omega2 [n], F [n], k)``; NaN for columns with no variance, and for k < 2.
    """
    x = np.asarray(counts, dtype=np.float64)
    _, inv = np.unique(np.asarray(labels), return_inverse=True)
    k = int(inv.max()) + 1 if inv.size else 0
    N, n = x.shape
    if k < 2 or N <= k:
        return np.full(n, np.nan), np.full(n, np.nan), k
    size = np.bincount(inv, minlength=k).astype(np.float64)
    sums = np.zeros((k, n))
    np.add.at(sums, inv, x)
    means = sums / size[:, None]
    grand = x.mean(axis=0)
    ss_b = (size[:, None] * (means - grand) ** 2).sum(axis=0)
    ss_w = ((x - means[inv]) ** 2).sum(axis=0)
    ms_w = ss_w / (N - k)
    with np.errstate(invalid="ignore", divide="ignore"):
        om = (ss_b - (k - 1) * ms_w) / (ss_b + ss_w + ms_w)
        F = (ss_b / (k - 1)) / ms_w
    dead = (ss_b + ss_w) <= 0
    om[dead] = np.nan
    F[dead] = np.nan
    return om, F, k


def _pattern_codes(active: np.ndarray) -> np.ndarray:
    """Integer code of the active-channel pattern ``[..., C]`` (bit c set if channel c is on)."""
    a = (np.asarray(active) > 0).astype(np.int64)
    return (a * (1 << np.arange(a.shape[-1], dtype=np.int64))).sum(axis=-1)


def _per_position(counts: np.ndarray, codes: np.ndarray, positions: Sequence[int]) -> Tuple[np.ndarray, int]:
    """Mean omega^2 over the given symbol steps (one-way ANOVA over trials at each step)."""
    vals = []
    for s in positions:
        om, _, k = omega_squared(counts[:, s], codes[:, s])
        if k >= 2:
            vals.append(om)
    if not vals:
        return np.full(counts.shape[2], np.nan), 0
    with np.errstate(invalid="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(np.stack(vals), axis=0), len(vals)


def selectivity(
    z: np.ndarray, steps_per_symbol: int, active: Optional[np.ndarray], channels: Sequence[str],
    answer_steps: Sequence[int] = (), answer_codes: Optional[np.ndarray] = None,
    cue_prefixes: Sequence[str] = ("cue", "task"),
) -> Dict[str, Any]:
    """Per-neuron selectivity (omega^2) by position, symbol, answer and task cue.

    Spike counts per (trial, symbol step) ``c[N, S, n]`` are the observations, as in the
    ANOVA analysis of Salaj et al. (2021), but with one-way ANOVAs (:func:`omega_squared`):

    * ``position``: groups = symbol step index; all (trial, step) observations.
    * ``symbol``: at each symbol step where the input pattern varies across trials, groups =
      input pattern (which channels are on); omega^2 averaged over those steps. Computing it
      *within* a step keeps position and phase effects out of it.
    * ``answer``: at each answer step, groups = the target answer; averaged over answer steps
      (selectivity for what is recalled or computed, i.e. memory / result coding).
    * ``cue``: like ``symbol`` but only over the task-cue channels (names starting with
      ``cue``/``task``); ``None`` for tasks without a cue.

    omega^2 >= 0.06 is a medium effect, >= 0.14 a large one (conventional thresholds).
    """
    c = window_counts(z, steps_per_symbol)  # [N, S, n]
    N, S, n = c.shape
    res: Dict[str, Any] = {"observations": "spike counts per (trial, symbol step)", "method": "one-way ANOVA, omega^2"}
    om_pos, _, k = omega_squared(c.reshape(N * S, n), np.tile(np.arange(S), N))
    res["position"] = {"omega2": om_pos, "levels": k}
    if active is not None:
        act = np.asarray(active)[:, :S]
        cue_idx = [i for i, ch in enumerate(channels) if any(ch.lower().startswith(p) for p in cue_prefixes)]
        sym_idx = [i for i in range(act.shape[2]) if i not in cue_idx]
        codes = _pattern_codes(act[:, :, sym_idx])
        varying = [s for s in range(S) if np.unique(codes[:, s]).size > 1]
        om, used = _per_position(c, codes, varying)
        res["symbol"] = {"omega2": om, "steps_used": used}
        if cue_idx:
            cc = _pattern_codes(act[:, :, cue_idx])
            om, used = _per_position(c, cc, [s for s in range(S) if np.unique(cc[:, s]).size > 1])
            res["cue"] = {"omega2": om, "steps_used": used}
        else:
            res["cue"] = None
    else:
        res["symbol"] = None
        res["cue"] = None
    if answer_codes is not None and len(answer_steps):
        full = np.zeros((N, S), dtype=np.int64)
        steps = [s for s in answer_steps if s < S]
        for w, s in enumerate(answer_steps):
            if s < S:
                full[:, s] = answer_codes[:, w]
        om, used = _per_position(c, full, [s for s in steps if np.unique(full[:, s]).size > 1])
        res["answer"] = {"omega2": om, "steps_used": used}
    else:
        res["answer"] = None
    return res


def summarize(values: np.ndarray) -> Dict[str, Any]:
    v = np.asarray(values, dtype=np.float64)
    f = v[np.isfinite(v)]
    if f.size == 0:
        return {"mean": None, "median": None, "n": 0}
    return {"mean": float(f.mean()), "median": float(np.median(f)), "n": int(f.size)}


def firing_regime(
    z: np.ndarray, dt_ms: float, steps_per_symbol: int, phases: Dict[str, Sequence[Sequence[int]]],
    windows: Sequence[Sequence[int]] = (), active: Optional[np.ndarray] = None, channels: Sequence[str] = (),
    answer_codes: Optional[np.ndarray] = None, bin_ms: float = 10.0,
) -> Dict[str, Any]:
    """All statistics of one spike record as a JSON-ready dict (arrays as lists)."""
    z = _check(z)
    if dt_ms <= 0:
        raise ValueError(f"dt_ms must be positive, got {dt_ms!r}")
    bin_steps = max(1, int(round(bin_ms / dt_ms)))
    rates = firing_rates(z, dt_ms)
    cv = isi_cv(z, dt_ms)
    cv_trial = isi_cv_per_trial(z, dt_ms)
    local = isi_local_variation(z, dt_ms)
    ff = fano_factor(z, steps_per_symbol)
    corr = count_correlation(z, steps_per_symbol)
    chi = golomb_chi(z, bin_steps)
    act = active_fraction(z, bin_steps)
    lo, hi = BAND_HZ
    all_phases = {k: list(v) for k, v in phases.items()}
    if windows:
        all_phases["answer"] = list(windows)
    pr = phase_rates(z, dt_ms, all_phases)
    by_phase = {}
    for name, ranges in all_phases.items():
        bins = np.unique(_steps_of(ranges, z.shape[1]) // bin_steps)
        bins = bins[bins < act.shape[1]]
        if bins.size:
            by_phase[name] = float(act[:, bins].mean())
    answer_steps = sorted({(b - 1) // steps_per_symbol for _, b in windows})
    sel = selectivity(z, steps_per_symbol, active, channels, answer_steps if answer_codes is not None else (),
                      answer_codes)
    in_band = (rates >= lo) & (rates <= hi)
    sel_summary: Dict[str, Any] = {"observations": sel["observations"], "method": sel["method"],
                                   "neurons_in_band": int(in_band.sum())}
    for factor in ("position", "symbol", "answer", "cue"):
        entry = sel[factor]
        if entry is None:
            sel_summary[factor] = None
            continue
        om = entry["omega2"]
        band = om[in_band]
        sel_summary[factor] = {
            **{k: v for k, v in entry.items() if k != "omega2"},
            "mean_omega2_in_band": summarize(band)["mean"],
            "fraction_medium_in_band": float(np.mean(band >= 0.06)) if band.size else None,
            "fraction_large_in_band": float(np.mean(band >= 0.14)) if band.size else None,
            "omega2": om,
        }
    return {
        "trials": int(z.shape[0]), "T_steps": int(z.shape[1]), "n": int(z.shape[2]), "dt_ms": float(dt_ms),
        "rate_hz": {**summarize(rates), "std": float(rates.std()), "max": float(rates.max()), "per_neuron": rates},
        "isi_cv": {**summarize(cv), "min_isis": 3, "pooled_over_trials": True, "per_neuron": cv},
        "isi_cv_per_trial": {**summarize(cv_trial), "min_isis_per_trial": 2, "per_neuron": cv_trial},
        "isi_lv": {**summarize(local["lv"]), "min_pairs": 2, "per_neuron": local["lv"]},
        "isi_cv2": {**summarize(local["cv2"]), "min_pairs": 2, "per_neuron": local["cv2"]},
        "symbol_steps": symbol_step_counts(z, dt_ms, steps_per_symbol, len(windows)),
        "fano_factor": {**summarize(ff), "window_ms": steps_per_symbol * dt_ms, "per_neuron": ff},
        "count_correlation": {**corr, "bin_ms": steps_per_symbol * dt_ms},
        "synchrony": {"measure": "Golomb chi", "chi": summarize(chi)["mean"], "bin_ms": bin_steps * dt_ms,
                      "independent_reference": 1.0 / math.sqrt(max(1, int((rates > 0).sum())))},
        "silent_fraction": float(np.mean(rates == 0)),
        "band_2_60hz_fraction": float(np.mean(in_band)),
        "sparsity": {"bin_ms": bin_steps * dt_ms, "active_fraction": float(act.mean()), "by_phase": by_phase},
        "phase_rates": pr,
        "selectivity": sel_summary,
    }
