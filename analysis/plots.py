"""Figures (matplotlib, Agg backend; no GUI). Each function writes one PNG and returns its path."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from cognet.training.io import atomic_write

DPI = 100


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    atomic_write(path, buf.getvalue())
    return Path(path)


def _raster(ax, spikes: np.ndarray, dt_ms: float, color: str, size: float = 12.0) -> None:
    t, i = np.nonzero(spikes)
    ax.scatter(t * dt_ms, i, s=size, c=color, marker="|", linewidths=1.2)
    ax.set_ylim(-0.5, spikes.shape[1] - 0.5)


def raster_figure(
    path: Path, x: np.ndarray, z: np.ndarray, dt_ms: float, channels: Sequence[str], neurons_per_channel: int,
    readout: Optional[np.ndarray], windows: Sequence[Sequence[int]], logits: np.ndarray, target: np.ndarray,
    phases: Dict[str, Sequence[Sequence[int]]], alif: Optional[np.ndarray] = None, title: str = "",
    output: str = "bits",
) -> Path:
    """One trial: input raster (by channel), recurrent raster (LIF/ALIF), readout vs target.

    ``x [T, n_in]``, ``z [T, n]``; ``readout [T, n_out]`` the readout trace y(t) (may be None);
    ``logits [W, n_out]`` per answer window; ``target [W, n_out]`` (bits) or ``[W]`` (classes).
    """
    plt = _plt()
    T = z.shape[0]
    fig, axes = plt.subplots(3, 1, figsize=(12, 8), sharex=True, gridspec_kw={"height_ratios": [1, 2.2, 1.2]})
    ax_in, ax_rec, ax_out = axes
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for c, name in enumerate(channels):
        block = x[:, c * neurons_per_channel:(c + 1) * neurons_per_channel]
        t, i = np.nonzero(block)
        ax_in.scatter(t * dt_ms, i + c * neurons_per_channel, s=10, marker="|", linewidths=1.2, color=colors[c % len(colors)], label=name)
    ax_in.set_ylim(-0.5, x.shape[1] - 0.5)
    ax_in.set_ylabel("input neuron")
    ax_in.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, markerscale=1.5, title="channel",
                 title_fontsize=8)
    if alif is not None and alif.any() and not alif.all():
        order = np.argsort(alif, kind="stable")  # LIF first, then ALIF
        zz = z[:, order]
        n_lif = int((~alif).sum())
        _raster(ax_rec, zz[:, :n_lif], dt_ms, "tab:blue")
        t, i = np.nonzero(zz[:, n_lif:])
        ax_rec.scatter(t * dt_ms, i + n_lif, s=12, c="tab:red", marker="|", linewidths=1.2)
        ax_rec.set_ylim(-0.5, z.shape[1] - 0.5)
        ax_rec.axhline(n_lif - 0.5, color="grey", lw=0.5)
        ax_rec.set_ylabel(f"recurrent neuron\n(blue LIF, red ALIF)")
    else:
        _raster(ax_rec, z, dt_ms, "k")
        ax_rec.set_ylabel("recurrent neuron")
    shade = ["#e8f0fe", "#fdecea", "#e6f4ea", "#fef7e0"]
    for j, (name, ranges) in enumerate(phases.items()):
        for a, b in ranges:
            for ax in axes:
                ax.axvspan(a * dt_ms, b * dt_ms, color=shade[j % len(shade)], zorder=0, lw=0)
            ax_in.text((a + b) / 2 * dt_ms, x.shape[1] - 0.5, name, ha="center", va="bottom", fontsize=8)
    for a, b in windows:
        ax_out.axvspan(a * dt_ms, b * dt_ms, color="0.85", zorder=0, lw=0)
    tt = np.arange(T) * dt_ms
    if output == "bits":
        if readout is not None:
            for k in range(readout.shape[1]):
                ax_out.plot(tt, 1 / (1 + np.exp(-readout[:, k])), lw=1.0, color=colors[k % len(colors)],
                            label="readout sigmoid(y(t))" if k == 0 else None)
        labelled = set()
        for w, (a, b) in enumerate(windows):
            mid = (a + b) / 2 * dt_ms
            for k in range(target.shape[-1]):
                ax_out.plot([a * dt_ms, b * dt_ms], [target[w, k]] * 2, color="k", lw=2.5,
                            label="target bit" if (w == 0 and k == 0) else None)
                p = 1 / (1 + np.exp(-logits[w, k]))
                ok = bool((p > 0.5) == (target[w, k] > 0.5))
                name = "window output, right" if ok else "window output, wrong"
                ax_out.plot(mid, p, "o", ms=5, color="tab:green" if ok else "tab:red",
                            label=None if name in labelled else name)
                labelled.add(name)
        ax_out.set_ylim(-0.08, 1.08)
        ax_out.set_ylabel("P(bit = 1)")
    else:
        if readout is not None:
            ax_out.plot(tt, readout, lw=0.8)
        for w, (a, b) in enumerate(windows):
            ax_out.text((a + b) / 2 * dt_ms, 0.5, f"{int(np.argmax(logits[w]))}/{int(target[w])}",
                        ha="center", transform=ax_out.get_xaxis_transform(), fontsize=8)
        ax_out.set_ylabel("readout y(t)")
    ax_out.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    ax_out.set_xlabel("time (ms)")
    ax_out.set_xlim(0, T * dt_ms)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def rate_histogram(path: Path, rates: np.ndarray, band=(2.0, 60.0), title: str = "") -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    r = np.asarray(rates)
    hi = max(float(r.max()) if r.size else 1.0, band[1] * 0.5)
    bins = np.linspace(0, hi * 1.02, 31)
    ax.hist(r, bins=bins, color="tab:blue", edgecolor="white")
    ax.axvspan(band[0], min(band[1], bins[-1]), color="tab:green", alpha=0.12, label=f"{band[0]:g}-{band[1]:g} Hz band")
    ax.axvline(r.mean(), color="k", ls="--", lw=1, label=f"mean {r.mean():.1f} Hz")
    ax.set_xlabel("firing rate (Hz)")
    ax.set_ylabel("neurons")
    ax.legend(fontsize=8)
    ax.set_title(title or "per-neuron firing rate", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def cv_vs_rate(path: Path, rates: np.ndarray, cv: np.ndarray, alif: Optional[np.ndarray] = None, title: str = "") -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ok = np.isfinite(cv)
    if alif is not None:
        for mask, name, col in ((~alif, "LIF", "tab:blue"), (alif, "ALIF", "tab:red")):
            m = ok & mask
            ax.scatter(rates[m], cv[m], s=14, color=col, alpha=0.8, label=f"{name} ({m.sum()})")
    else:
        ax.scatter(rates[ok], cv[ok], s=14, alpha=0.8, label=f"neurons ({ok.sum()})")
    ax.axhline(1.0, color="grey", ls=":", lw=1, label="Poisson (CV 1)")
    ax.set_xlabel("firing rate (Hz)")
    ax.set_ylabel("ISI CV")
    ax.legend(fontsize=8)
    ax.set_title(title or "ISI irregularity against rate", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _curve(rows: List[Dict[str, Any]], key: str):
    pts = [(r["iteration"], r[key]) for r in rows if key in r and r[key] is not None]
    if not pts:
        return np.zeros(0), np.zeros(0)
    a = np.asarray(pts, dtype=float)
    return a[:, 0], a[:, 1]


def _smooth(y: np.ndarray, k: int) -> np.ndarray:
    if y.size < k or k < 2:
        return y
    c = np.cumsum(np.insert(y, 0, 0.0))
    out = (c[k:] - c[:-k]) / k
    return np.concatenate([y[: k - 1] * np.nan, out])


def learning_curves(path: Path, runs: Dict[str, List[Dict[str, Any]]], metric: str = "sequence_accuracy",
                    title: str = "", chance: Optional[float] = None, target: Optional[float] = None,
                    rate_target_hz: Optional[float] = None) -> Path:
    """Loss, accuracy and mean rate against iteration; one line per run (``runs``: label -> metrics rows);
    optional horizontal lines: ``chance`` and the early-stop ``target`` (accuracy), ``rate_target_hz``."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, (label, rows) in enumerate(runs.items()):
        col = colors[j % len(colors)]
        train = [r for r in rows if not r.get("eval")]
        ev = [r for r in rows if r.get("eval")]
        k = max(1, len(train) // 50)
        for ax, key in zip(axes, ("task_loss", metric, "mean_rate_hz")):
            it, y = _curve(train, key)
            if y.size:
                ax.plot(it, y, color=col, alpha=0.25, lw=0.7)
                ax.plot(it, _smooth(y, k), color=col, lw=1.4, label=f"{label} (train)")
        for ax, key in zip(axes[1:], (metric, "mean_rate_hz")):
            it, y = _curve(ev, key)
            if y.size:
                ax.plot(it, y, "o--", color=col, ms=4, lw=1, label=f"{label} (validation)")
    if chance is not None:
        axes[1].axhline(chance, color="0.4", ls=":", lw=1, label=f"chance {chance:.3g}")
    if target is not None:
        axes[1].axhline(target, color="k", ls="--", lw=0.8, label=f"early-stop target {target:g} (validation)")
    if rate_target_hz is not None:
        axes[2].axhline(rate_target_hz, color="k", ls="--", lw=0.8, label=f"rate target {rate_target_hz:g} Hz")
        axes[2].legend(fontsize=7)
    axes[0].set_ylabel("task loss (without rate penalty)")
    axes[0].set_yscale("log")
    axes[1].set_ylabel(metric.replace("_", " "))
    axes[1].set_ylim(-0.02, 1.02)
    axes[2].set_ylabel("mean rate (Hz)")
    for ax in axes:
        ax.set_xlabel("iteration")
    axes[1].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def compare_bars(path: Path, rows: List[Dict[str, Any]]) -> Path:
    """Accuracy and mean rate per rule (or ``group``: rule and config), grouped by task
    (points = runs, i.e. seeds of one config; bars = their mean)."""
    plt = _plt()
    task_names = sorted({r["task"] for r in rows})
    rule_names = sorted({r.get("group", r["rule"]) for r in rows})
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    width = 0.8 / max(1, len(rule_names))
    for ax, key, ylabel in ((axes[0], "accuracy", "held-out accuracy"), (axes[1], "mean_rate_hz", "mean rate (Hz)")):
        for j, rule in enumerate(rule_names):
            xs, means = [], []
            for i, task in enumerate(task_names):
                vals = [r[key] for r in rows
                        if r["task"] == task and r.get("group", r["rule"]) == rule and r.get(key) is not None]
                if not vals:
                    continue
                x0 = i + (j - (len(rule_names) - 1) / 2) * width
                xs.append(x0)
                means.append(float(np.mean(vals)))
                ax.scatter([x0] * len(vals), vals, color="k", s=10, zorder=3)
            ax.bar(xs, means, width=width * 0.9, color=colors[j % len(colors)], label=rule)
        ax.set_xticks(range(len(task_names)))
        ax.set_xticklabels(task_names)
        ax.set_ylabel(ylabel)
    axes[0].set_ylim(0, 1.05)
    axes[0].legend(title="rule [config]" if any("group" in r and r["group"] != r["rule"] for r in rows) else "rule",
                   fontsize=8)
    metrics = sorted({f"{r['task']}: {r['accuracy_metric'].replace('_', ' ')}" for r in rows if r.get("accuracy_metric")})
    fig.suptitle("accuracy = each task's stopping metric" + (f" ({', '.join(metrics)})" if metrics else ""), fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def generalization_figure(path: Path, res: Dict[str, Any]) -> Path:
    """Accuracy (bit and sequence, 95 % CI) against the varied task parameter, the training
    value marked, chance levels dashed; right panel: mean firing rate per value."""
    plt = _plt()
    rows = res["rows"]
    xs = [float(r["value"]) for r in rows]
    fig, (ax, ax_r) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [2, 1]})
    for key, label, color in (("bit_accuracy", "bit accuracy", "tab:blue"),
                              ("sequence_accuracy", "sequence accuracy", "tab:orange")):
        y = np.array([r[key] for r in rows])
        ci = np.array([r[f"{key}_ci95"] for r in rows])
        ax.errorbar(xs, y, yerr=[y - ci[:, 0], ci[:, 1] - y], marker="o", capsize=3, color=color, label=label)
        ax.plot(xs, [r["chance"][key] for r in rows], ls=":", color=color, label=f"chance ({label.split()[0]})")
    if res.get("trained_value") is not None:
        for a in (ax, ax_r):
            a.axvline(float(res["trained_value"]), color="grey", lw=1, ls="--")
        ax.text(float(res["trained_value"]), 1.02, " trained", color="grey", fontsize=8, va="bottom")
    ax.set_ylim(0, 1.08)
    ax.set_xticks(xs)
    ax.set_xlabel(res["param"])
    ax.set_ylabel(f"held-out accuracy ({res['trials']} trials, 95 % CI)")
    ax.set_title(f"{res['task']} / {res['rule']} seed {res['seed']}: generalisation")
    ax.legend(fontsize=8, loc="lower left")
    ax_r.plot(xs, [r["mean_rate_hz"] for r in rows], marker="o", color="k")
    ax_r.set_xticks(xs)
    ax_r.set_xlabel(res["param"])
    ax_r.set_ylabel("mean firing rate (Hz)")
    ax_r.set_ylim(bottom=0)
    fig.tight_layout()
    return _save(fig, path)
