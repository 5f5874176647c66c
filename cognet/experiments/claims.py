"""Seed-paper claims as experiments: sweeps, a result table, a figure and a measured verdict.

Each experiment is a grid over one or two factors and the seeds, trained with
:mod:`cognet.experiments.sweep` into ``<out>/runs/`` (resumable; finished runs are skipped), then::

    <out>/sweep.json     the explicit list of runs (labels, run directory, resolved config)
    <out>/results.json   per-run rows, the aggregated table and the verdict sentence
    <out>/results.csv    per-run rows
    <out>/results.md     the aggregated table and the verdict
    <out>/figure.png     the figure

Accuracy is the task's stop metric (``Task.stop_metric``: sequence accuracy for ``add``,
bit accuracy for ``copy``/``reverse``) on the held-out *test* trials of ``summary.json``.
A diverged run counts as chance accuracy. Grids: ``small`` (default; 5 seeds, ``add``,
``train.iterations=1000`` with early stopping), ``full`` (more levels, every task, the task's own
iteration budget) and ``paper`` (10 seeds, each claim on the tasks it is about -- ``paper_tasks`` --
at 2000 iterations; sized for a Slurm cluster or a patient laptop: the estimate is printed first).

Every comparison is paired by seed (:mod:`cognet.experiments.stats`): the verdict reports the
mean paired difference with its 95 % t confidence interval, the paired t-test and its p-value,
and Cohen's d_z, and is generated from them: a difference counts when the interval excludes
0 (p < 0.05) and ``|d| >= TOL`` (0.02 accuracy); an interval inside ``+-TOL`` means no practical
difference; anything else is undecided at that number of seeds. Figures show each seed and the
95 % CI of the mean.

The experiments::

    | experiment | factor(s) | claim |
    |---|---|---|
    | surrogate-scale | surrogate shape x scale (width or peak factor) | Zenke & Vogels 2021: shape matters little, scale matters |
    | reset-gradient | network.detach_reset x train.lr | arXiv 2011.09964: the reset term mostly buys robustness to the learning rate |
    | leak-aware | surrogate.leak_aware | Lee et al. 2020: the leak-aware derivative helps train leaky neurons |
    | rules | rule (bptt, eprop-symmetric, eprop-random, eprop-adaptive) x task | Bellec et al. 2020: e-prop approaches BPTT |
    | sparse | train.rate_target_hz | Zenke & Vogels 2021 / Kraisnikovic et al. 2021: accurate at low firing rates |
    | length-generalization | task x rule, tested at longer task.n_bits | symbolic computation: accuracy per bit holds on longer inputs |
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from cognet.training.config import ConfigError
from cognet.training.io import atomic_write, write_json
from cognet.experiments import stats as pstats
from cognet.experiments.sweep import NO_RESULT, SlurmOptions, aggregate, execute, grid, make_runs, markdown_table, mean_std, write_csv, write_manifest

TOL = 0.02
GRIDS = ("small", "full", "paper")
EPROP_RULES = ("eprop-symmetric", "eprop-random", "eprop-adaptive")
ROW_COLUMNS = ["task", "rule", "seed", "status", "metric", "accuracy", "bit_accuracy", "sequence_accuracy",
               "mean_rate_hz", "silent_fraction", "iterations", "wall_s", "stopped_early", "n_rec", "chance", "run_dir"]


@dataclass
class Options:
    """What the user chose on the command line (None = the experiment's default for the grid)."""

    out: Path
    grid: str = "small"
    seeds: Optional[int] = None
    iterations: Optional[int] = None
    tasks: Sequence[str] = ()
    sets: Sequence[str] = ()
    config_file: Optional[str] = None
    jobs: int = 1
    executor: str = "local"
    retry_failed: bool = False
    scale_param: str = "width"  # surrogate-scale: which knob the scale factor multiplies
    #: extra grid axes, config key -> values (sparse only: e.g. network.n_rec, train.iterations, task.step_ms)
    axes: Dict[str, Sequence[Any]] = field(default_factory=dict)
    slurm: SlurmOptions = field(default_factory=SlurmOptions)


@dataclass
class Analysis:
    table: List[Dict[str, Any]]  # aggregated rows
    columns: List[str]
    headers: List[str]
    head: str  # the measured numbers, in words
    verdict: str  # what they say about the claim
    numbers: Dict[str, Any]  # the figures the sentence uses

    @property
    def sentence(self) -> str:
        return self.head + self.verdict


def paired_verdict(diffs: Sequence[float], tol: float = TOL) -> Tuple[float, float, int]:
    """Mean paired difference, its standard error and its sign (+1, -1, or 0 if not clear):
    the sign of :func:`cognet.experiments.stats.decide` (95 % CI excludes 0 and ``|d| >= tol``)."""
    st = pstats.paired_stats(diffs)
    if st["n"] == 0:
        return math.nan, math.nan, 0
    return st["mean"], st["se"], pstats.decide(st, tol)["sign"]


def paired_comparison(diffs: Sequence[float], what: str = "paired difference", tol: float = TOL) -> Dict[str, Any]:
    """Statistics, decision and their words for one seed-paired comparison: ``stats`` (mean,
    CI, test, p, d_z), ``sign``/``kind`` (:func:`cognet.experiments.stats.decide`), ``text``
    (:func:`cognet.experiments.stats.describe`) and ``why_not`` (why it shows no effect)."""
    st = pstats.paired_stats(diffs)
    dec = pstats.decide(st, tol)
    return {"stats": st, **dec, "text": pstats.describe(st, what), "why_not": pstats.why_not(st, dec["kind"], tol)}


def per_seed_diffs(rows: Sequence[Mapping[str, Any]], key: str, a: Any, b: Any, within: Sequence[str] = (),
                   unit: Sequence[str] = ("task", "seed")) -> List[float]:
    """Seed-paired differences ``a - b`` of accuracy between the rows with ``row[key] == a``
    and ``== b``: cells are matched on ``unit`` (task, seed) and the factors ``within`` (e.g.
    the learning rate), and the differences of the cells of one unit are averaged, giving one
    difference per task and seed (the unit of replication)."""
    cells: Dict[tuple, Dict[Any, float]] = {}
    for r in rows:
        cells.setdefault((tuple(r[k] for k in unit), tuple(r[k] for k in within)), {})[r[key]] = r["accuracy"]
    per_unit: Dict[tuple, List[float]] = {}
    for (u, _), v in cells.items():
        if a in v and b in v:
            per_unit.setdefault(u, []).append(v[a] - v[b])
    return [sum(ds) / len(ds) for ds in per_unit.values()]


def no_clear_difference(d: float, se: float, tol: float = TOL) -> str:
    """Why a paired difference does not count: noise, or a consistent effect below ``tol``
    (the older 2-SE wording; the experiments now use :func:`paired_comparison`)."""
    if abs(d) > 2 * se:
        return (f"The difference is consistent across seeds ({d:+.3f}, more than 2 SE) but smaller than the "
                f"{tol} accuracy cognet counts as a real effect")
    return f"The difference is within noise (|d| <= max({tol}, 2 SE) = {max(tol, 2 * se):.3f})"


def _cell_means(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> Dict[tuple, float]:
    return {tuple(g[k] for k in keys): g["accuracy_mean"] for g in aggregate(rows, keys)}


def _f(x: float, nd: int = 3) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


# ----------------------------------------------------------------------------------------------
class Experiment:
    name = ""
    claim = ""
    default_tasks: Tuple[str, ...] = ("add",)
    paper_tasks: Tuple[str, ...] = ("add",)  # --grid paper: the tasks the claim is about
    seeds = {"small": 5, "full": 5, "paper": 10}
    iterations: Dict[str, Optional[int]] = {"small": 1000, "full": None, "paper": 2000}

    #: whether ``Options.axes`` (extra config-key grid axes) may be given
    takes_axes = False

    def axes(self, opts: Options) -> Dict[str, Sequence[Any]]:
        raise NotImplementedError

    def to_sets(self, point: Mapping[str, Any], opts: Options) -> Dict[str, Any]:
        raise NotImplementedError

    def analyse(self, rows: List[Dict[str, Any]], opts: Options) -> Analysis:
        raise NotImplementedError

    def plot(self, rows: List[Dict[str, Any]], analysis: Analysis, path: Path) -> None:
        raise NotImplementedError

    # -- shared helpers --------------------------------------------------------------------------
    def task_list(self, opts: Options) -> List[str]:
        import tasks

        names = list(opts.tasks) or list(self.default_tasks if opts.grid == "small" else
                                         self.paper_tasks if opts.grid == "paper" else tasks.suite_tasks())
        for t in names:
            if t not in tasks.TASKS:
                raise ConfigError(f"unknown task {t!r}; available: {', '.join(sorted(tasks.TASKS))}")
        return names

    def seed_list(self, opts: Options) -> List[int]:
        n = opts.seeds if opts.seeds is not None else self.seeds[opts.grid]
        if n < 1:
            raise ConfigError(f"--seeds must be >= 1, got {n}")
        return list(range(n))

    def base_sets(self, opts: Options) -> List[str]:
        it = opts.iterations if opts.iterations is not None else self.iterations[opts.grid]
        return ([f"train.iterations={it}"] if it is not None else []) + list(opts.sets)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _log_ticks(ax, values: Sequence[float], axis: str = "x") -> None:
    """Log axis with plain tick labels at ``values`` (no 2x10^0 style labels)."""
    vals = sorted(set(float(v) for v in values))
    getattr(ax, f"set_{axis}scale")("log")
    getattr(ax, f"set_{axis}ticks")(vals)
    getattr(ax, f"set_{axis}ticklabels")([f"{v:g}" for v in vals])
    getattr(ax, f"{axis}axis").set_minor_locator(__import__("matplotlib.ticker").ticker.NullLocator())


def _chance(rows: Sequence[Mapping[str, Any]], task: str) -> float:
    return mean_std([r["chance"] for r in rows if r["task"] == task])[0]


def _metric_label(rows: Sequence[Mapping[str, Any]]) -> str:
    metrics = sorted({str(r["metric"]).replace("_", " ") for r in rows})
    return "held-out " + " / ".join(metrics)


# ----------------------------------------------------------------------------------------------
class SurrogateScale(Experiment):
    name = "surrogate-scale"
    claim = "Zenke & Vogels 2021: surrogate-gradient learning is robust to the surrogate's shape, not to its scale"
    paper_tasks = ("add", "copy", "evidence")
    shapes = {"small": ["triangle", "fast-sigmoid", "gaussian", "arctan"], "full": None,
              "paper": ["triangle", "fast-sigmoid", "gaussian", "arctan"]}
    factors = {"small": [0.1, 1.0, 10.0], "full": [0.1, 0.3, 1.0, 3.0, 10.0], "paper": [0.1, 1.0, 10.0]}

    def axes(self, opts):
        from cognet.core.surrogate import SHAPES

        if opts.scale_param not in ("width", "peak"):
            raise ConfigError(f"scale_param must be width or peak, got {opts.scale_param!r}")
        return {"task": self.task_list(opts), "shape": self.shapes[opts.grid] or list(SHAPES),
                "scale": self.factors[opts.grid], "seed": self.seed_list(opts)}

    def to_sets(self, p, opts):
        from cognet.core.surrogate import DEFAULT_WIDTH

        sets = {"task": p["task"], "surrogate.name": p["shape"], "seed": p["seed"],
                "surrogate.width": DEFAULT_WIDTH[p["shape"]]}
        if opts.scale_param == "width":
            sets["surrogate.width"] = p["scale"] * DEFAULT_WIDTH[p["shape"]]
        else:
            sets["surrogate.peak"] = p["scale"] * 0.3
        return sets

    def analyse(self, rows, opts):
        table = aggregate(rows, ["task", "shape", "scale"])
        shapes = list(dict.fromkeys(r["shape"] for r in rows))
        scales = list(dict.fromkeys(r["scale"] for r in rows))
        spread_shape, spread_scale = [], []
        for task in dict.fromkeys(r["task"] for r in rows):
            cell = _cell_means([r for r in rows if r["task"] == task], ["shape", "scale"])
            for sc in scales:
                vals = [cell[(sh, sc)] for sh in shapes if (sh, sc) in cell]
                spread_shape.append(max(vals) - min(vals))
            for sh in shapes:
                vals = [cell[(sh, sc)] for sc in scales if (sh, sc) in cell]
                spread_scale.append(max(vals) - min(vals))
        a = sum(spread_shape) / len(spread_shape)
        b = sum(spread_scale) / len(spread_scale)
        best = max(table, key=lambda g: g["accuracy_mean"])
        worst = min(table, key=lambda g: g["accuracy_mean"])
        head = (f"Across {len(shapes)} surrogate shapes the accuracy differs by {_f(a)} on average at a fixed scale, "
                f"across {len(scales)} scales ({min(scales):g}x to {max(scales):g}x the default {opts.scale_param}) "
                f"by {_f(b)} at a fixed shape (best {best['shape']} at {best['scale']:g}x: {_f(best['accuracy_mean'])}; "
                f"worst {worst['shape']} at {worst['scale']:g}x: {_f(worst['accuracy_mean'])}). ")
        cmp_ = paired_comparison(_spread_diffs(rows, shapes, scales), "Per seed, scale spread minus shape spread:")
        head += cmp_["text"] + ". "
        if cmp_["kind"] == "one-seed":  # no interval: the point estimates only
            sign = 1 if b > a + TOL else -1 if a > b + TOL else 0
            cmp_["why_not"] += "; by the point estimates alone"
        else:
            sign = cmp_["sign"]
        if sign > 0 and b > max(2 * a, TOL):
            verdict = "Scale matters much more than shape, supporting Zenke & Vogels (2021)."
        elif sign > 0:
            verdict = ("Scale matters more than shape but by less than a factor of two, "
                       "weak support for Zenke & Vogels (2021).")
        elif sign < 0:
            verdict = "Shape matters more than scale here, contradicting Zenke & Vogels (2021)."
        else:
            verdict = (cmp_["why_not"] + ": shape and scale change accuracy about equally here, so this run neither "
                       "supports nor contradicts Zenke & Vogels (2021).")
        if cmp_["kind"] == "one-seed" and sign != 0:
            verdict += " (One seed: no confidence interval; use --seeds 5 or more.)"
        return Analysis(table, ["task", "shape", "scale", "accuracy_mean", "accuracy_std", "n", "mean_rate_hz_mean",
                                "iterations_mean", "diverged"],
                        ["task", "shape", f"{opts.scale_param} factor", "accuracy", "sd", "seeds", "rate (Hz)",
                         "iterations", "diverged"],
                        head, verdict, {"spread_across_shapes": a, "spread_across_scales": b,
                                        "scale_minus_shape": cmp_["stats"], "kind": cmp_["kind"]})

    def plot(self, rows, an, path):
        shapes = list(dict.fromkeys(g["shape"] for g in an.table))
        _line_panels(rows, an.table, "shape", {sh: sh for sh in shapes}, "scale",
                     "surrogate scale factor (x default)", "shape vs scale", path)


def _spread_diffs(rows, shapes, scales) -> List[float]:
    """Per task and seed: mean accuracy spread across scales (at a fixed shape) minus the mean
    spread across shapes (at a fixed scale), from that seed's own runs."""
    out = []
    units = dict.fromkeys((r["task"], r["seed"]) for r in rows)
    for task, seed in units:
        cell = {(r["shape"], r["scale"]): r["accuracy"] for r in rows if r["task"] == task and r["seed"] == seed}
        sh_sp = [max(v) - min(v) for v in ([cell[(sh, sc)] for sh in shapes if (sh, sc) in cell] for sc in scales) if v]
        sc_sp = [max(v) - min(v) for v in ([cell[(sh, sc)] for sc in scales if (sh, sc) in cell] for sh in shapes) if v]
        if sh_sp and sc_sp:
            out.append(sum(sc_sp) / len(sc_sp) - sum(sh_sp) / len(sh_sp))
    return out


class ResetGradient(Experiment):
    name = "reset-gradient"
    claim = "arXiv 2011.09964: the gradient through the reset mostly improves robustness to the learning rate"
    paper_tasks = ("add", "copy")
    lrs = {"small": [0.001, 0.003, 0.01, 0.03, 0.1], "full": [0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3],
           "paper": [0.001, 0.003, 0.01, 0.03, 0.1]}

    def axes(self, opts):
        return {"task": self.task_list(opts), "reset_gradient": ["kept", "detached"], "lr": self.lrs[opts.grid],
                "seed": self.seed_list(opts)}

    def to_sets(self, p, opts):
        return {"task": p["task"], "network.detach_reset": p["reset_gradient"] == "detached", "train.lr": p["lr"],
                "seed": p["seed"]}

    def analyse(self, rows, opts):
        table = aggregate(rows, ["task", "reset_gradient", "lr"])
        cmp_ = paired_comparison(per_seed_diffs(rows, "reset_gradient", "kept", "detached", within=("lr",)),
                                 "paired difference kept - detached (per seed, mean over the learning rates)")
        d, se, sign = cmp_["stats"]["mean"], cmp_["stats"]["se"], cmp_["sign"]
        stats = {}
        best = max(g["accuracy_mean"] for g in table)
        for rg in ("kept", "detached"):
            gs = [g for g in table if g["reset_gradient"] == rg]
            stats[rg] = {"mean": sum(g["accuracy_mean"] for g in gs) / len(gs),
                         "worst": min(g["accuracy_mean"] for g in gs),
                         "good_lrs": sum(1 for g in gs if g["accuracy_mean"] >= best - 0.05), "n_lrs": len(gs)}
        k, dt = stats["kept"], stats["detached"]
        head = (f"Averaged over {k['n_lrs']} learning rates, accuracy is {_f(k['mean'])} with the reset gradient "
                f"and {_f(dt['mean'])} without ({cmp_['text']}; worst learning rate "
                f"{_f(k['worst'])} vs {_f(dt['worst'])}; within 0.05 of the best at {k['good_lrs']} vs "
                f"{dt['good_lrs']} settings). ")
        if sign > 0:
            verdict = "Keeping the reset term makes training more robust to the learning rate, supporting 2011.09964."
        elif sign < 0:
            verdict = "Keeping the reset term makes training less robust to the learning rate, contradicting 2011.09964."
        else:
            verdict = (cmp_["why_not"] + ", so this run does not show the learning-rate robustness 2011.09964 "
                       "reported for the reset term.")
        return Analysis(table, ["task", "reset_gradient", "lr", "accuracy_mean", "accuracy_std", "n",
                                "mean_rate_hz_mean", "iterations_mean", "wall_s_mean", "diverged"],
                        ["task", "reset gradient", "lr", "accuracy", "sd", "seeds", "rate (Hz)", "iterations",
                         "wall (s)", "diverged"], head, verdict,
                        {"paired_difference": d, "se": se, "kept": k, "detached": dt, "paired": cmp_["stats"],
                         "kind": cmp_["kind"]})

    def plot(self, rows, an, path):
        _line_panels(rows, an.table, "reset_gradient",
                     {"kept": "gradient through reset", "detached": "reset detached"}, "lr",
                     "Adam learning rate", "reset gradient vs learning rate", path, points=True)


def _line_panels(rows, table, series_key: str, labels: Mapping[Any, str], x_key: str, xlabel: str,
                 title: str, path: Path, points: bool = False) -> None:
    """One panel per task: accuracy (mean over seeds, error bars the 95 % CI of the mean) against
    ``x_key`` (log axis), one line per value of ``series_key``, and every seed's run as a dot."""
    plt = _plt()
    tasks_ = list(dict.fromkeys(r["task"] for r in rows))
    fig, axs = plt.subplots(1, len(tasks_), figsize=(5.5 * len(tasks_), 4), squeeze=False)
    for ax, task in zip(axs[0], tasks_):
        for value, label in labels.items():
            gs = [g for g in table if g[series_key] == value and g["task"] == task]
            ax.errorbar([g[x_key] for g in gs], [g["accuracy_mean"] for g in gs],
                        yerr=[_ci(g, "accuracy") for g in gs], marker="o", capsize=3, label=label)
            pts = [r for r in rows if r[series_key] == value and r["task"] == task]  # every seed
            ax.scatter([r[x_key] for r in pts], [r["accuracy"] for r in pts], s=8, alpha=0.4)
        ax.axhline(_chance(rows, task), color="gray", ls=":", label="chance")
        _log_ticks(ax, [g[x_key] for g in table])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(_metric_label(rows))
        ax.set_title(f"{task}: {title}")
        ax.legend(fontsize=8)
    _ci_caption(fig)
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)


def _ci_caption(fig) -> None:
    fig.text(0.01, 0.005, "mean over seeds; error bars: 95 % t CI of the mean; dots: single seeds", fontsize=7,
             color="0.3", ha="left", va="bottom")


def _ci(g: Mapping[str, Any], value: str) -> float:
    """Error bar of an aggregated cell: the half-width of the 95 % CI of the mean (0 with one seed)."""
    half = g.get(f"{value}_ci95", math.nan)
    return 0.0 if half is None or math.isnan(half) else half


def with_ci_column(an: Analysis) -> Analysis:
    """Show the 95 % CI half-width of the accuracy next to its sd in the table."""
    if "accuracy_std" in an.columns and "accuracy_ci95" not in an.columns:
        k = an.columns.index("accuracy_std") + 1
        an.columns.insert(k, "accuracy_ci95")
        an.headers.insert(k, "95 % CI +-")
    return an


def _bar_plot(rows, groups: Sequence[str], key: str, labels: Mapping[Any, str], title: str, path: Path) -> None:
    plt = _plt()
    tasks_ = list(dict.fromkeys(r["task"] for r in rows))
    paired = len(groups) >= 2
    w = max(4.5, 1.6 * len(groups) * len(tasks_))
    fig, axs = plt.subplots(1, 2 if paired else 1, figsize=(w + (4.0 if paired else 0.0), 4), squeeze=False,
                            gridspec_kw={"width_ratios": [w, 4.0] if paired else [1]})
    ax = axs[0][0]
    width = 0.8 / len(groups)
    for j, gval in enumerate(groups):
        xs, ms, ss = [], [], []
        for i, task in enumerate(tasks_):
            accs = [r["accuracy"] for r in rows if r["task"] == task and r[key] == gval]
            m, _, _ = mean_std(accs)
            xs.append(i + (j - (len(groups) - 1) / 2) * width)
            ms.append(m)
            half = pstats.t_ci_halfwidth(accs)  # error bar: 95 % CI of the mean over seeds
            ss.append(0.0 if math.isnan(half) else half)
            ax.scatter([xs[-1]] * len(accs), accs, color="k", s=10, zorder=3)
        ax.bar(xs, ms, width * 0.9, yerr=ss, capsize=3, label=labels.get(gval, str(gval)))
    for i, task in enumerate(tasks_):
        ax.hlines(_chance(rows, task), i - 0.45, i + 0.45, colors="gray", linestyles=":",
                  label="chance" if i == 0 else None)
    ax.set_xticks(range(len(tasks_)))
    ax.set_xticklabels(tasks_)
    ax.set_ylabel(_metric_label(rows))
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    if paired:
        _paired_panel(axs[0][1], rows, groups, key, labels, tasks_)
    _ci_caption(fig)
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)


def _paired_panel(ax, rows, groups: Sequence[str], key: str, labels: Mapping[Any, str], tasks_: Sequence[str]) -> None:
    """Seed-paired differences of each group against the first (one dot per task and seed),
    with the mean and its 95 % t CI, and the +-TOL band that counts as no practical difference."""
    base = groups[0]
    for j, g in enumerate(groups[1:]):
        for i, task in enumerate(tasks_):
            d = per_seed_diffs([r for r in rows if r["task"] == task], key, g, base)
            if not d:
                continue
            x = j + (i - (len(tasks_) - 1) / 2) * (0.8 / len(tasks_))
            st = pstats.paired_stats(d)
            ax.scatter([x] * len(d), d, color="k", s=10, zorder=3)
            half = 0.0 if math.isnan(st["ci_high"]) else st["ci_high"] - st["mean"]
            ax.errorbar([x], [st["mean"]], yerr=[half], fmt="o", color="C3", capsize=4, zorder=4,
                        label="mean, 95 % CI" if i == 0 and j == 0 else None)
    ax.axhline(0.0, color="k", lw=0.8)
    ax.axhspan(-TOL, TOL, color="0.85", zorder=0, label=f"+-{TOL}")
    ax.set_xticks(range(len(groups) - 1))
    ax.set_xticklabels([f"{labels.get(g, g)}\n- {labels.get(base, base)}" for g in groups[1:]], fontsize=8)
    ax.set_ylabel("paired difference (same seed)")
    ax.set_title("seed-paired differences" + (f" ({', '.join(tasks_)})" if len(tasks_) > 1 else ""))
    ax.legend(fontsize=7)


class LeakAware(Experiment):
    name = "leak-aware"
    claim = "Lee et al. 2020: a leak-aware approximate derivative improves training of leaky spiking neurons"
    paper_tasks = ("copy", "evidence", "store-recall")  # leaky memory over delays

    def axes(self, opts):
        return {"task": self.task_list(opts), "derivative": ["plain", "leak-aware"], "seed": self.seed_list(opts)}

    def to_sets(self, p, opts):
        return {"task": p["task"], "surrogate.leak_aware": p["derivative"] == "leak-aware", "seed": p["seed"]}

    def analyse(self, rows, opts):
        table = aggregate(rows, ["task", "derivative"])
        by = {(r["task"], r["derivative"], r["seed"]): r for r in rows}
        pairs = [(r, by[(t, "plain", s)]) for (t, dv, s), r in by.items()
                 if dv == "leak-aware" and (t, "plain", s) in by]
        cmp_ = paired_comparison([a["accuracy"] - b["accuracy"] for a, b in pairs],
                                 "difference leak-aware - plain")
        d, se, sign = cmp_["stats"]["mean"], cmp_["stats"]["se"], cmp_["sign"]
        di, _, _ = mean_std([a["iterations"] - b["iterations"] for a, b in pairs])
        la = mean_std([a["accuracy"] for a, _ in pairs])[0]
        pl = mean_std([b["accuracy"] for _, b in pairs])[0]
        head = (f"Leak-aware derivative {_f(la)} vs plain surrogate {_f(pl)} held-out accuracy over {len(pairs)} "
                f"seed-paired runs ({cmp_['text']}; {di:+.0f} iterations on average). ")
        if sign > 0:
            verdict = "The leak-aware derivative helps here, supporting Lee et al. (2020)."
        elif sign < 0:
            verdict = "The leak-aware derivative hurts here, contradicting Lee et al. (2020)."
        else:
            verdict = (cmp_["why_not"] + ": cognet's BPTT already differentiates through the leak exactly, and the "
                       "leak-aware correction of Lee et al. (2020) brings no shown benefit here.")
        return Analysis(table, ["task", "derivative", "accuracy_mean", "accuracy_std", "n", "mean_rate_hz_mean",
                                "iterations_mean", "wall_s_mean", "diverged"],
                        ["task", "derivative", "accuracy", "sd", "seeds", "rate (Hz)", "iterations", "wall (s)",
                         "diverged"], head, verdict, {"paired_difference": d, "se": se, "iterations_difference": di,
                                                      "paired": cmp_["stats"], "kind": cmp_["kind"]})

    def plot(self, rows, an, path):
        _bar_plot(rows, ["plain", "leak-aware"], "derivative", {}, "plain vs leak-aware surrogate", path)


class Rules(Experiment):
    name = "rules"
    claim = "Bellec et al. 2020: e-prop approaches the accuracy of BPTT"
    paper_tasks = ("store-recall", "evidence", "add")  # e-prop's own tasks (Bellec et al. 2020, Figs. 2-3)

    def rule_list(self) -> List[str]:
        import rules

        wanted = ["bptt", *EPROP_RULES]
        have = [r for r in wanted if r in rules.RULES]
        if not any(r in rules.RULES for r in EPROP_RULES):
            raise ConfigError(f"the rules experiment compares BPTT with e-prop ({', '.join(EPROP_RULES)}), but no "
                              f"e-prop rule is registered (available: {', '.join(sorted(rules.RULES))})")
        return have

    def axes(self, opts):
        return {"task": self.task_list(opts), "rule": self.rule_list(), "seed": self.seed_list(opts)}

    def to_sets(self, p, opts):
        return {"task": p["task"], "rule": p["rule"], "seed": p["seed"]}

    def analyse(self, rows, opts):
        table = aggregate(rows, ["task", "rule"])
        by = {(r["task"], r["rule"], r["seed"]): r["accuracy"] for r in rows}
        parts, close, far, open_ = [], [], [], []
        nums: Dict[str, Any] = {}
        bp = mean_std([v for (t, ru, s), v in by.items() if ru == "bptt"])[0]
        margin = 0.05
        for rule in dict.fromkeys(r["rule"] for r in rows):
            if rule == "bptt":
                continue
            cmp_ = paired_comparison(per_seed_diffs(rows, "rule", rule, "bptt"), f"{rule} - bptt")
            st = cmp_["stats"]
            nums[rule] = {"gap": st["mean"], "se": st["se"], "paired": st}
            parts.append(cmp_["text"])
            if st["n"] < 2:  # no interval: the point estimate
                (close if st["mean"] >= -margin else far).append(rule)
            elif st["ci_low"] >= -margin:  # the whole CI within 0.05 below BPTT (or above it)
                close.append(rule)
            elif st["ci_high"] < -margin:  # the whole CI more than 0.05 below
                far.append(rule)
            else:
                open_.append(rule)
        missing = [r for r in EPROP_RULES if r not in nums]
        head = (f"Mean held-out accuracy of BPTT is {_f(bp)}; seed-paired: " + "; ".join(parts)
                + (f"; not registered: {', '.join(missing)}" if missing else "") + ". ")
        if close and not far and not open_:
            verdict = "Every e-prop variant comes within 0.05 of BPTT, supporting Bellec et al. (2020)."
        elif close and far:
            verdict = (f"{', '.join(close)} {'comes' if len(close) == 1 else 'come'} within 0.05 of BPTT but "
                       f"{', '.join(far)} {'does' if len(far) == 1 else 'do'} not: partial support for Bellec et al. "
                       "(2020) at this training budget.")
        elif close:
            verdict = (f"{', '.join(close)} {'comes' if len(close) == 1 else 'come'} within 0.05 of BPTT: support for "
                       "Bellec et al. (2020) at this training budget.")
        elif far:
            verdict = ("No e-prop variant is shown within 0.05 of BPTT at this training budget, contradicting "
                       "Bellec et al. (2020) here.")
        else:
            verdict = "The confidence intervals straddle the 0.05 margin: more seeds are needed to decide."
        if open_ and (close or far):
            verdict += (f" Undecided ({'its' if len(open_) == 1 else 'their'} 95 % CI straddles -0.05): "
                        f"{', '.join(open_)}.")
        if any(nums[r]["paired"]["n"] < 2 for r in nums):
            verdict += " (One seed: no confidence interval; use --seeds 5 or more.)"
        return Analysis(table, ["task", "rule", "accuracy_mean", "accuracy_std", "n", "mean_rate_hz_mean",
                                "iterations_mean", "wall_s_mean", "diverged"],
                        ["task", "rule", "accuracy", "sd", "seeds", "rate (Hz)", "iterations", "wall (s)", "diverged"],
                        head, verdict, {"bptt": bp, **nums})

    def plot(self, rows, an, path):
        _bar_plot(rows, list(dict.fromkeys(r["rule"] for r in rows)), "rule", {}, "learning rules", path)


class Sparse(Experiment):
    name = "sparse"
    claim = ("Zenke & Vogels 2021, Kraisnikovic et al. 2021: with activity regularisation the networks stay accurate "
             "at low firing rates")
    paper_tasks = ("add", "duplicate", "reverse")  # Kraisnikovic et al. 2021: bit strings and numbers
    seeds = {"small": 5, "full": 8, "paper": 10}
    targets = {"small": [1.0, 2.0, 3.0, 5.0, 10.0], "full": [1.0, 2.0, 3.0, 5.0, 10.0, 20.0],
               "paper": [1.0, 2.0, 3.0, 5.0, 10.0]}
    MARGIN = 0.05  # the accuracy the sparsest networks may lose for the claim to hold
    #: Options.axes (--axis KEY=V1,V2): what the low end may need, e.g. network.n_rec=100,300,
    #: train.iterations=1000,3000, task.step_ms=20,40; results are grouped by them
    takes_axes = True
    THRESHOLD = 0.90  # sequence accuracy that must hold at a target

    def axes(self, opts):
        from cognet.training.config import set_key, RunConfig

        for key in opts.axes:
            if key in ("task", "task.name", "rule", "seed", "train.rate_target_hz"):
                raise ConfigError(f"--axis {key} is fixed by the sparse experiment; use --task / --seeds")
            set_key(RunConfig(), key, list(opts.axes[key])[0])  # an unknown key fails here, by name
        return {"task": self.task_list(opts), **{k: list(v) for k, v in opts.axes.items()},
                "rate_target_hz": self.targets[opts.grid], "seed": self.seed_list(opts)}

    def to_sets(self, p, opts):
        return {"task": p["task"], **{k: p[k] for k in opts.axes}, "train.rate_target_hz": p["rate_target_hz"],
                "seed": p["seed"]}

    def analyse(self, rows, opts):
        extra = [k for k in opts.axes]
        table = aggregate(rows, ["task", *extra, "rate_target_hz"],
                          values=("accuracy", "sequence_accuracy", "mean_rate_hz", "iterations", "wall_s"))
        lo = min(r["rate_target_hz"] for r in rows)
        margin = self.MARGIN
        drops, parts, paired = [], [], {}
        holds, loses, open_ = [], [], []
        for key in dict.fromkeys(tuple(g[k] for k in ["task", *extra]) for g in table):
            label = key[0] + "".join(f", {k}={v}" for k, v in zip(extra, key[1:]))
            gs = [g for g in table if tuple(g[k] for k in ["task", *extra]) == key]
            rs = [r for r in rows if tuple(r[k] for k in ["task", *extra]) == key]
            best = max(gs, key=lambda g: g["accuracy_mean"])
            low = next(g for g in gs if g["rate_target_hz"] == lo)
            drops.append(best["accuracy_mean"] - low["accuracy_mean"])
            # the drop per seed: best target (chosen on the means) minus the lowest target
            cmp_ = paired_comparison(per_seed_diffs(rs, "rate_target_hz", best["rate_target_hz"], lo), "drop")
            st = paired[label] = cmp_["stats"]
            parts.append(f"{label}: {_f(low['accuracy_mean'])} at the {lo:g} Hz target (measured "
                         f"{_f(low['mean_rate_hz_mean'], 1)} Hz) vs best {_f(best['accuracy_mean'])} at "
                         f"{best['rate_target_hz']:g} Hz (measured {_f(best['mean_rate_hz_mean'], 1)} Hz), "
                         + cmp_["text"])
            if st["n"] < 2:
                (holds if drops[-1] <= margin else loses).append(label)
            elif st["ci_high"] <= margin:
                holds.append(label)
            elif st["ci_low"] > margin:
                loses.append(label)
            else:
                open_.append(label)
        worst_drop = max(drops)
        head = "Held-out accuracy " + "; ".join(parts) + ". "
        low_rate = max(g["mean_rate_hz_mean"] for g in table if g["rate_target_hz"] == lo)
        one_seed = any(st["n"] < 2 for st in paired.values())
        if low_rate > 2 * lo:
            verdict = (f"The networks did not get down to the {lo:g} Hz target (measured up to {low_rate:.1f} Hz), "
                       "so this run does not test the low-rate regime; raise train.rate_reg or train longer.")
        elif loses:
            verdict = (f"The sparsest networks lose more than {margin} accuracy on {'; '.join(loses)} (up to "
                       f"{worst_drop:.3f}) at this training budget, contradicting robust performance at the lowest "
                       "rate here.")
        elif open_:
            verdict = (f"On {'; '.join(open_)} the 95 % CI of the drop straddles {margin}: more seeds are needed to "
                       "decide whether the sparsest networks stay accurate.")
        else:
            verdict = (f"The sparsest networks lose at most {worst_drop:.3f} accuracy"
                       + ("" if one_seed else f" (the 95 % CI of every drop stays below {margin})")
                       + ", supporting accurate computation at low firing rates.")
        if one_seed and low_rate <= 2 * lo:
            verdict += " (One seed: no confidence interval; use --seeds 5 or more.)"
        lowest, low_text = self.lowest_targets(rows, table, extra)
        return Analysis(table, ["task", *extra, "rate_target_hz", "accuracy_mean", "accuracy_std",
                                "sequence_accuracy_mean", "n", "mean_rate_hz_mean", "mean_rate_hz_std",
                                "iterations_mean", "diverged"],
                        ["task", *extra, "rate target (Hz)", "accuracy", "sd", "sequence acc.", "seeds",
                         "measured rate (Hz)", "rate sd", "iterations", "diverged"], head, verdict + low_text,
                        {"max_drop_at_lowest_target": worst_drop, "lowest_target": lowest, "axes": extra,
                         "drop_paired": paired})

    def lowest_targets(self, rows, table, extra) -> Tuple[Dict[str, Any], str]:
        """Per task (and setting of the extra axes): the lowest rate target at which the mean
        sequence accuracy over seeds is >= THRESHOLD (with its 95 % t-interval and the measured
        rate; a diverged run counts at chance), and the lowest measured rate of any single run
        that reached THRESHOLD."""
        from cognet.experiments.generalize import mean_ci95

        def seq(r) -> float:
            v = r.get("sequence_accuracy", math.nan)
            if v is None or math.isnan(v):
                return r["accuracy"] if r.get("metric") == "sequence_accuracy" else math.nan
            return v

        out: Dict[str, Any] = {}
        parts = []
        for key in dict.fromkeys(tuple(g[k] for k in ["task", *extra]) for g in table):
            label = key[0] + "".join(f", {k}={v}" for k, v in zip(extra, key[1:]))
            rs = [r for r in rows if tuple(r[k] for k in ["task", *extra]) == key]
            targets = sorted({r["rate_target_hz"] for r in rs})
            cells = {t: mean_ci95([seq(r) for r in rs if r["rate_target_hz"] == t]) for t in targets}
            held = [t for t in targets if cells[t]["mean"] >= self.THRESHOLD]
            good = [r for r in rs if seq(r) >= self.THRESHOLD and not math.isnan(r["mean_rate_hz"])]
            entry: Dict[str, Any] = {"target_hz": None, "sequence_accuracy_by_target": {f"{t:g}": cells[t] for t in targets},
                                     "lowest_measured_rate_hz_of_a_run": min((r["mean_rate_hz"] for r in good),
                                                                             default=None)}
            if held:
                t = held[0]
                ci = cells[t]
                rate = mean_std([r["mean_rate_hz"] for r in rs if r["rate_target_hz"] == t])[0]
                entry.update({"target_hz": t, "sequence_accuracy": ci, "measured_rate_hz": rate})
                cis = "" if math.isnan(ci["lo"]) else f" [{_f(ci['lo'])}, {_f(ci['hi'])}]"
                parts.append(f"{label}: {t:g} Hz (sequence accuracy {_f(ci['mean'])}{cis} at a measured "
                             f"{_f(rate, 2)} Hz)")
            else:
                parts.append(f"{label}: none of the targets {', '.join(f'{t:g}' for t in targets)} Hz")
            if good:
                parts[-1] += (f"; lowest measured rate of a run at >= {self.THRESHOLD:.2f}: "
                              f"{_f(entry['lowest_measured_rate_hz_of_a_run'], 2)} Hz")
            out[label] = entry
        return out, (f" Lowest rate target at which sequence accuracy >= {self.THRESHOLD:.2f} holds (mean over seeds): "
                     + "; ".join(parts) + ".")

    def plot(self, rows, an, path):
        plt = _plt()
        extra = list(an.numbers.get("axes", []))
        keys = list(dict.fromkeys(tuple(g[k] for k in ["task", *extra]) for g in an.table))
        # one colour per line from a 20-colour map (the default cycle repeats after 10), a
        # marker per 10 lines, and one legend beside the plots so that it hides no data
        cmap = plt.get_cmap("tab10" if len(keys) <= 10 else "tab20")
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10 + (2.5 if len(keys) > 4 else 0), 4))
        for i, key in enumerate(keys):
            label = key[0] + "".join(f", {k}={v}" for k, v in zip(extra, key[1:]))
            gs = [g for g in an.table if tuple(g[k] for k in ["task", *extra]) == key]
            rs = [r for r in rows if tuple(r[k] for k in ["task", *extra]) == key]
            style = dict(color=cmap(i % cmap.N), marker="os^Dv"[(i // 10) % 5], capsize=3)
            a1.errorbar([g["mean_rate_hz_mean"] for g in gs], [g["accuracy_mean"] for g in gs],
                        xerr=[_ci(g, "mean_rate_hz") for g in gs], yerr=[_ci(g, "accuracy") for g in gs],
                        label=label, **style)
            a1.scatter([r["mean_rate_hz"] for r in rs], [r["accuracy"] for r in rs], s=8, alpha=0.4,
                       color=style["color"])
            a2.errorbar([g["rate_target_hz"] for g in gs], [g["mean_rate_hz_mean"] for g in gs],
                        yerr=[_ci(g, "mean_rate_hz") for g in gs], **style)
        tasks_ = list(dict.fromkeys(r["task"] for r in rows))
        for task in tasks_:  # in the colour of the task's (first) line
            i = next(j for j, k in enumerate(keys) if k[0] == task)
            a1.axhline(_chance(rows, task), color=cmap(i % cmap.N), ls=":", lw=0.8,
                       label="chance" if len(tasks_) == 1 else None)
        if len(tasks_) > 1:
            a1.plot([], [], color="gray", ls=":", lw=0.8, label="chance (in each task's colour)")
        a1.axhline(self.THRESHOLD, color="k", ls="--", lw=0.6, label=f"{self.THRESHOLD:.2f}")
        xs = sorted({r["rate_target_hz"] for r in rows})
        a2.plot(xs, xs, "k--", lw=0.8, label="target")
        a1.set_xscale("log")
        a1.set_xlabel("measured mean firing rate (Hz; points: single runs)")
        _log_ticks(a2, xs)
        a2.set_xlabel("firing-rate target (Hz)")
        handles = a1.get_legend_handles_labels()
        extra_h = a2.get_legend_handles_labels()
        if len(keys) > 4:
            fig.legend(handles[0] + extra_h[0], handles[1] + extra_h[1], fontsize=7, loc="center right")
        else:
            a1.legend(fontsize=8)
            a2.legend(fontsize=8)
        a1.set_ylabel(_metric_label(rows))
        a2.set_ylabel("measured mean rate (Hz)")
        _log_ticks(a2, xs, "y")
        _ci_caption(fig)
        a1.set_title("accuracy vs measured rate")
        a2.set_title("measured vs target rate")
        fig.tight_layout(rect=(0, 0, 0.8 if len(keys) > 4 else 1, 1))
        fig.savefig(path, dpi=120, format="png")
        plt.close(fig)


class LengthGeneralization(Experiment):
    """Train at the default length, test the same network on longer inputs (up to 4x), per
    task x rule x seed (helpers in :mod:`cognet.experiments.generalize`).

    Per run the held-out accuracy at each test length (``train.eval_trials`` trials per length,
    the run's test stream) is cached in ``<run>/length-generalization.json``. Per (task, rule,
    length): mean over seeds with 95 % t-intervals. Per task, the *retention* of the
    above-chance bit (answer) accuracy at the longest length,
    ``(acc(L) - chance(L)) / (acc(L0) - chance(L0))``, averaged over the seeds of the rules that
    learnt the task at L0 (bit accuracy >= chance + 0.1): >= 0.8 algorithm-like (accuracy per bit holds),
    <= 0.2 lookup-like (collapses to chance), partial in between. ``count`` trains at 4 bits
    (its default 7 bits already fills its 3 output bits) and is tested up to 7 bits. A diverged
    run has no model to test and is left out of the length table (``diverged`` in its row).
    """

    name = "length-generalization"
    claim = ("Small spiking networks compute symbolically: trained on short strings, an algorithm-like solution "
             "keeps its accuracy per bit on strings up to 4x longer, a lookup-like one collapses")
    default_tasks = ("add", "subtract", "compare", "count", "parity", "copy", "reverse")
    paper_tasks = default_tasks
    seeds = {"small": 5, "full": 10, "paper": 10}
    factors = {"small": [1, 2, 4], "full": [1, 1.5, 2, 3, 4], "paper": [1, 1.5, 2, 3, 4]}
    train_n_bits = {"count": 4}
    rules_wanted = ("bptt", "eprop-symmetric", "eprop-random")
    HOLDS, COLLAPSES = 0.8, 0.2

    def task_list(self, opts):
        from cognet.experiments.generalize import LENGTH_TASKS

        names = list(opts.tasks) or list(self.default_tasks)
        bad = [t for t in names if t not in LENGTH_TASKS]
        if bad:
            raise ConfigError(f"length-generalization varies task.n_bits of {', '.join(LENGTH_TASKS)}; "
                              f"not of {', '.join(bad)}")
        return names

    def axes(self, opts):
        import rules

        have = [r for r in self.rules_wanted if r in rules.RULES]
        return {"task": self.task_list(opts), "rule": have, "seed": self.seed_list(opts)}

    def to_sets(self, p, opts):
        sets = {"task": p["task"], "rule": p["rule"], "seed": p["seed"]}
        if p["task"] in self.train_n_bits:
            sets["task.n_bits"] = self.train_n_bits[p["task"]]
        return sets

    def analyse(self, rows, opts):
        from cognet.experiments.generalize import evaluate_lengths, mean_ci95, retention
        from cognet.training.io import read_json

        per_len: List[Dict[str, Any]] = []
        for r in rows:
            run_dir = Path(r["run_dir"])
            if not (run_dir / "model.safetensors").exists():
                continue  # diverged: no model to test
            trials = int(read_json(run_dir / "summary.json").get("eval_trials", 256))
            g = evaluate_lengths(run_dir, self.factors[opts.grid], trials)
            base = next(x for x in g["rows"] if x["trained"])
            longest = g["rows"][-1]
            r.update({"trained_n_bits": g["trained_value"], "longest_n_bits": longest["value"],
                      "bit_accuracy_longest": longest["bit_accuracy"],
                      "sequence_accuracy_longest": longest["sequence_accuracy"],
                      "bit_retention": retention(base["bit_accuracy"], base["chance"]["bit_accuracy"],
                                                 longest["bit_accuracy"], longest["chance"]["bit_accuracy"])})
            for x in g["rows"]:
                per_len.append({"task": r["task"], "rule": r["rule"], "seed": r["seed"], "n_bits": x["value"],
                                "factor": x["value"] / g["trained_value"], "trained": x["trained"],
                                "bit_accuracy": x["bit_accuracy"], "sequence_accuracy": x["sequence_accuracy"],
                                "accuracy": x[r["metric"]], "chance_bit": x["chance"]["bit_accuracy"],
                                "chance_sequence": x["chance"]["sequence_accuracy"],
                                "mean_rate_hz": x["mean_rate_hz"], "dropped": g.get("dropped", [])})
        table: List[Dict[str, Any]] = []
        for key in dict.fromkeys((x["task"], x["rule"], x["n_bits"]) for x in per_len):
            xs = [x for x in per_len if (x["task"], x["rule"], x["n_bits"]) == key]
            b = mean_ci95([x["bit_accuracy"] for x in xs], (0.0, 1.0))
            q = mean_ci95([x["sequence_accuracy"] for x in xs], (0.0, 1.0))
            table.append({"task": key[0], "rule": key[1], "n_bits": key[2], "factor": xs[0]["factor"],
                          "bit_accuracy_mean": b["mean"], "bit_ci_lo": b["lo"], "bit_ci_hi": b["hi"],
                          "sequence_accuracy_mean": q["mean"], "seq_ci_lo": q["lo"], "seq_ci_hi": q["hi"],
                          "accuracy_mean": mean_ci95([x["accuracy"] for x in xs])["mean"],
                          "chance_bit": xs[0]["chance_bit"], "chance_sequence": xs[0]["chance_sequence"],
                          "mean_rate_hz_mean": mean_ci95([x["mean_rate_hz"] for x in xs])["mean"], "n": len(xs)})
        verdicts: Dict[str, Any] = {}
        parts = []
        for task in dict.fromkeys(r["task"] for r in rows):
            rs = [r for r in rows if r["task"] == task and "bit_retention" in r]
            if not rs:
                continue
            learnt = [r for r in rs if not math.isnan(r["bit_retention"])]
            ret = mean_ci95([r["bit_retention"] for r in learnt])
            n0, n1 = rs[0]["trained_n_bits"], max(r["longest_n_bits"] for r in rs)
            if n1 == n0:
                kind = "untested (no longer length keeps the network's input/output sizes)"
            elif not learnt:
                kind = "not learnt at the training length"
            elif ret["mean"] >= self.HOLDS:
                kind = "algorithm-like"
            elif ret["mean"] <= self.COLLAPSES:
                kind = "lookup-like"
            else:
                kind = "partial"
            cells = {ru: [g for g in table if g["task"] == task and g["rule"] == ru and g["n_bits"] in (n0, n1)]
                     for ru in dict.fromkeys(r["rule"] for r in rs)}
            accs = "; ".join(f"{ru} {_f(c[0]['bit_accuracy_mean'])} -> {_f(c[-1]['bit_accuracy_mean'])}"
                             for ru, c in cells.items() if c)
            ci = "" if math.isnan(ret["lo"]) else f" [{_f(ret['lo'], 2)}, {_f(ret['hi'], 2)}]"
            verdicts[task] = {"kind": kind, "trained_n_bits": n0, "longest_n_bits": n1, "retention": ret,
                              "learnt_runs": len(learnt), "runs": len(rs)}
            parts.append(f"{task} ({n0} -> {n1} bits, bit accuracy {accs}): retention {_f(ret['mean'], 2)}{ci}, "
                         f"{kind}")
        head = "Per task, trained length -> longest test length: " + "; ".join(parts) + ". "
        algo = [t for t, v in verdicts.items() if v["kind"] == "algorithm-like"]
        look = [t for t, v in verdicts.items() if v["kind"] == "lookup-like"]
        verdict = (f"Algorithm-like (accuracy per bit holds): {', '.join(algo) or 'none'}; lookup-like (collapses to "
                   f"chance): {', '.join(look) or 'none'}. The claim of symbolic computation is "
                   + ("supported for " + ", ".join(algo) if algo else "not supported by this run") + ".")
        return Analysis(table, ["task", "rule", "n_bits", "bit_accuracy_mean", "bit_ci_lo", "bit_ci_hi",
                                "sequence_accuracy_mean", "seq_ci_lo", "seq_ci_hi", "chance_bit", "chance_sequence",
                                "mean_rate_hz_mean", "n"],
                        ["task", "rule", "bits", "bit acc.", "95 % CI lo", "hi", "sequence acc.", "95 % CI lo", "hi",
                         "chance (bit)", "chance (seq.)", "rate (Hz)", "seeds"],
                        head, verdict, {"verdicts": verdicts, "per_length": per_len})

    def plot(self, rows, an, path):
        plt = _plt()
        tasks_ = list(dict.fromkeys(g["task"] for g in an.table))
        if not tasks_:
            tasks_ = ["(no model)"]
        cols = min(4, len(tasks_))
        nrows = (len(tasks_) + cols - 1) // cols
        fig, axs = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.6 * nrows), squeeze=False)
        for ax in axs.flat[len(tasks_):]:
            ax.axis("off")
        for ax, task in zip(axs.flat, tasks_):
            gs = [g for g in an.table if g["task"] == task]
            for ru in dict.fromkeys(g["rule"] for g in gs):
                cs = [g for g in gs if g["rule"] == ru]
                y = [g["bit_accuracy_mean"] for g in cs]
                lo = [0 if math.isnan(g["bit_ci_lo"]) else g["bit_accuracy_mean"] - g["bit_ci_lo"] for g in cs]
                hi = [0 if math.isnan(g["bit_ci_hi"]) else g["bit_ci_hi"] - g["bit_accuracy_mean"] for g in cs]
                ax.errorbar([g["n_bits"] for g in cs], y, yerr=[lo, hi], marker="o", capsize=3, label=ru)
            xs = sorted({g["n_bits"] for g in gs})
            ch = {g["n_bits"]: g["chance_bit"] for g in gs}
            ax.plot(xs, [ch[x] for x in xs], color="gray", ls=":", label="chance")
            trained = [g["n_bits"] for g in gs if abs(g["factor"] - 1.0) < 1e-9]
            if trained:
                ax.axvline(trained[0], color="gray", lw=1, ls="--")
            kind = an.numbers.get("verdicts", {}).get(task, {}).get("kind", "")
            ax.set_title(f"{task}: {kind.split(' (')[0]}", fontsize=10)
            ax.set_xticks(xs)
            ax.set_ylim(0, 1.05)
            ax.set_xlabel("task.n_bits (dashed: trained)")
            ax.set_ylabel("held-out bit accuracy (95 % CI)")
            ax.legend(fontsize=7, loc="lower left")
        fig.tight_layout()
        fig.savefig(path, dpi=120, format="png")
        plt.close(fig)


EXPERIMENTS: Dict[str, Experiment] = {e.name: e for e in (SurrogateScale(), ResetGradient(), LeakAware(), Rules(),
                                                          Sparse())}
EXPERIMENTS[LengthGeneralization.name] = LengthGeneralization()


def check_learnt(an: Analysis, rows: Sequence[Mapping[str, Any]], margin: float = 0.1) -> None:
    """Replace the verdict when no setting learnt beyond chance: then the run tests nothing."""
    best = max(g["accuracy_mean"] for g in an.table)
    chance = mean_std([r["chance"] for r in rows])[0]
    an.numbers["best_accuracy"], an.numbers["chance"] = best, chance
    if best - chance < margin:
        an.verdict = (f"No setting learnt clearly beyond chance (best {best:.3f} vs chance {chance:.3f}), so this run "
                      "cannot test the claim; train longer (--iterations) or use --grid full.")


def build_runs(name: str, opts: Options):
    if name not in EXPERIMENTS:
        raise ConfigError(f"unknown experiment {name!r}; available: {', '.join(EXPERIMENTS)}")
    if opts.grid not in GRIDS:
        raise ConfigError(f"grid must be one of {list(GRIDS)}, got {opts.grid!r}")
    exp = EXPERIMENTS[name]
    if opts.axes and not exp.takes_axes:
        raise ConfigError(f"--axis is not available for experiment {name!r} (only: "
                          f"{', '.join(n for n, e in EXPERIMENTS.items() if e.takes_axes)})")
    points = grid(exp.axes(opts))
    runs = make_runs(points, lambda p: exp.to_sets(p, opts), Path(opts.out) / "runs",
                     base_sets=exp.base_sets(opts), config_file=opts.config_file)
    return exp, runs


def write_results(exp: Experiment, rows: List[Dict[str, Any]], an: Analysis, out: Path,
                  meta: Mapping[str, Any]) -> Dict[str, Path]:
    out = Path(out)
    label_cols = [k for k in rows[0] if k not in ROW_COLUMNS and k != "error"] if rows else []
    cols = label_cols + [c for c in ROW_COLUMNS if c not in label_cols]
    paths = {"json": out / "results.json", "csv": out / "results.csv", "md": out / "results.md",
             "figure": out / "figure.png"}
    write_json(paths["json"], {"experiment": exp.name, "claim": exp.claim, "verdict": an.sentence,
                               "numbers": an.numbers, **meta, "table": an.table, "runs": rows})
    write_csv(paths["csv"], rows, cols)
    failed = [r for r in rows if r["status"] in NO_RESULT]
    md = [f"# Experiment `{exp.name}`", "", f"Claim: {exp.claim}.", "", f"**Measured:** {an.sentence}", "",
          f"Grid `{meta['grid']}`, {meta['n_runs']} runs; accuracy = held-out {', '.join(sorted({r['metric'] for r in rows}))}"
          " on the test trials (mean and sd over seeds; diverged runs count as chance).", "",
          markdown_table(an.table, an.columns, an.headers), "", "![figure](figure.png)", ""]
    if failed:
        md += ["Runs that failed with an error (excluded; re-run the experiment to retry):", ""]
        md += [f"- `{r['run_dir']}`: {r['error'].splitlines()[0]}" for r in failed] + [""]
    atomic_write(paths["md"], "\n".join(md))
    ok = [r for r in rows if r["status"] not in NO_RESULT]
    if ok:
        import io as _io

        buf = _io.BytesIO()
        exp.plot(ok, an, buf)
        atomic_write(paths["figure"], buf.getvalue())
    return paths


def run_experiment(name: str, opts: Options, log: Optional[Callable[[str], None]] = None,
                   progress: Optional[Callable[[int, int], None]] = None,
                   estimate_first: bool = False) -> Dict[str, Any]:
    """Build the sweep of experiment ``name``, run what is unfinished, write the results
    (``progress``/``estimate_first``: see :func:`cognet.experiments.sweep.execute`)."""
    say = log or (lambda s: None)
    exp, runs = build_runs(name, opts)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"grid": opts.grid, "n_runs": len(runs), "executor": opts.executor, "jobs": opts.jobs,
            "sets": list(exp.base_sets(opts))}
    write_manifest(out / "sweep.json", exp.name, runs, meta)
    t0 = time.perf_counter()
    rows = execute(runs, opts.executor, opts.jobs, out / "slurm", opts.retry_failed, opts.slurm, say,
                   progress=progress, estimate_first=estimate_first)
    for r, run in zip(rows, runs):
        r.update(run.labels)
    ok = [r for r in rows if r["status"] not in NO_RESULT]
    if not ok:
        raise RuntimeError(f"every run of {name} failed; first error: {rows[0].get('error', '?')}")
    an = with_ci_column(exp.analyse(ok, opts))
    check_learnt(an, ok)
    paths = write_results(exp, rows, an, out, meta)
    return {"experiment": name, "verdict": an.sentence, "numbers": an.numbers, "table": an.table,
            "n_runs": len(runs), "errors": len(rows) - len(ok), "wall_s": time.perf_counter() - t0,
            "paths": {k: str(v) for k, v in paths.items()}, "columns": an.columns, "headers": an.headers}
