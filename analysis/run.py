"""``analyze_run``: firing-regime statistics, figures and a report for one run directory.

Reads (or, for torch, creates) the spike record ``DIR/spikes-<source>.safetensors`` of
held-out trials (:mod:`cognet.training.records`) and writes into ``DIR/analysis-<source>/``::

    analysis.json   all statistics (see analysis.stats), per-neuron arrays included
    raster.png      one trial: input, recurrent and readout activity with the target
    rates.png       rate histogram;  cv_rate.png  ISI CV against rate
    learning.png    learning curves from DIR/metrics.jsonl (if present)
    report.md / report.html   the one-page report (the HTML embeds the images)

The run directory's lock is held throughout (one writer at a time), and everything one
analysis writes (a new torch record included) is staged and moved into place as one set
(:class:`cognet.training.io.OutputSet`): a killed analysis leaves the previous set or the new one.
A run directory this process cannot write (an archive, a read-only mount, another user's run)
can still be analysed with ``out_dir`` elsewhere: then the lock and the staging are those of
``out_dir``, and a torch record made on the way is not cached in the run directory.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, Optional

import errno
import os

import numpy as np

from cognet.training.io import OutputSet, read_json_object, read_jsonl, run_lock, write_json

from . import plots
from .report import write_report
from .stats import firing_regime

SOURCES = ("torch", "brian2")
DEFAULT_TRIALS = 256


def record_path(run_dir: Path, source: str) -> Path:
    return Path(run_dir) / f"spikes-{source}.safetensors"


def _load_model(run_dir: Path):
    from cognet.training.model import load_model

    path = Path(run_dir) / "model.safetensors"
    if not path.exists():
        return None, None
    net, cfg = load_model(path)
    net.eval()
    return net, cfg


def get_record(run_dir: Path, source: str = "torch", trials: Optional[int] = None, net=None, cfg=None,
               stage: Optional[OutputSet] = None, cache: bool = True):
    """Load the spike record of ``source``; for torch, create it (held-out test seed) if missing
    or if it holds fewer than ``trials`` trials (into ``stage`` if given, which commits it
    with the rest; not saved at all with ``cache=False``). Returns ``(record, created)``."""
    from cognet.training.records import load_record, record_torch, save_record

    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; use one of {', '.join(SOURCES)}")
    if trials is not None and trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    path = record_path(run_dir, source)
    if path.exists():
        rec = load_record(path)
        if trials is None or rec.trials >= trials or source != "torch":
            return rec, False
    elif source == "brian2":
        raise FileNotFoundError(f"{path} does not exist: run `cognet verify {run_dir}` first to simulate the "
                                "trained network in Brian2, then analyse it with --source brian2")
    if net is None:
        raise FileNotFoundError(f"{run_dir} holds no trained model (model.safetensors missing); "
                                f"train it first with `cognet train --out {run_dir}`")
    import tasks
    from cognet.training.trainer import derive_seeds

    from cognet.training.model import check_task_matches

    task = tasks.get_task(cfg.task, cfg.task_params, cfg.network.dt_ms)
    check_task_matches(net, task, Path(run_dir) / "model.safetensors")
    rec = record_torch(net, task, trials or DEFAULT_TRIALS, derive_seeds(cfg.seed)["test"])
    if cache:
        save_record(stage.path(path) if stage is not None else path, rec)
    return rec, True


def readout_trace(net, z: np.ndarray) -> np.ndarray:
    """Readout ``y(t) = W_out zf(t) + b_out`` with ``zf(t) = kappa zf(t-1) + z(t)`` for one trial ``z [T, n]``."""
    from scipy.signal import lfilter

    zf = lfilter([1.0], [1.0, -net.kappa], np.asarray(z, dtype=np.float64), axis=0)
    w = net.w_out.detach().double().cpu().numpy()
    b = net.b_out.detach().double().cpu().numpy()
    return zf @ w.T + b


def answer_codes(target: np.ndarray, output: str) -> np.ndarray:
    """Answers per (trial, window) as ints: bit patterns for ``bits`` tasks, class index otherwise."""
    t = np.asarray(target)
    if t.ndim == 3:  # [W, trials, n_out] bits
        bits = (t > 0.5).astype(np.int64)
        return (bits * (1 << np.arange(bits.shape[-1]))).sum(-1).T
    return t.astype(np.int64).T


def record_accuracy(rec) -> Dict[str, float]:
    logits = rec.logits.numpy()
    target = rec.target.numpy()
    mask = rec.mask.numpy().astype(bool)
    if target.ndim == 3:
        correct = (logits > 0) == (target > 0.5)
        per_win = correct.all(-1)
        bit = float(correct[mask].mean()) if mask.any() else float("nan")
    else:
        per_win = logits.argmax(-1) == target
        bit = float(per_win[mask].mean()) if mask.any() else float("nan")
    seq = float((per_win | ~mask).all(0).mean())
    return {"bit_accuracy": bit, "sequence_accuracy": seq}


RATE_TOLERANCE = 0.25  # "rate target met": mean rate within +-25 % of train.rate_target_hz


def context_rows(run_dir: Path, cfg, summary: Dict[str, Any], rec, source: str) -> list:
    """(item, value, definition) rows that place the analysis: configuration, chance level,
    rate target and whether it was met, and the Brian2 agreement of ``verify.json``."""
    from cognet.training.io import CorruptFileError

    rows = []
    if cfg is not None:
        n, tc = cfg.network, cfg.train
        rows.append(("configuration", f"{cfg.task} / {cfg.rule} seed {cfg.seed}: {n.n_rec} neurons "
                     f"({100 * n.alif_fraction:.0f} % ALIF, beta {n.beta:g}, tau_a {n.tau_adapt_ms:g} ms), dt {n.dt_ms:g} ms, "
                     f"lr {tc.lr:g}, surrogate {cfg.surrogate.name} peak {cfg.surrogate.peak:g}, {tc.iterations} "
                     f"iterations max", "config.yaml holds every key"))
    chance = summary.get("chance")
    if not isinstance(chance, dict) and cfg is not None:
        import tasks

        chance = tasks.get_task(cfg.task, cfg.task_params, cfg.network.dt_ms).chance()
    if isinstance(chance, dict):
        rows.append(("chance level", f"bit {chance.get('bit_accuracy', float('nan')):.3f}, sequence "
                     f"{chance.get('sequence_accuracy', float('nan')):.3g}", "best input-independent answer"))
    if cfg is not None:
        target, mean = cfg.train.rate_target_hz, float(np.asarray(rec.z, dtype=np.float64).mean() * 1000.0 / rec.dt_ms)
        if target > 0 and cfg.train.rate_reg > 0:
            form = cfg.train.rate_reg_form
            ceiling = form == "above"  # a per-neuron ceiling: any mean below it meets it
            met = (mean <= (1 + RATE_TOLERANCE) * target if ceiling
                   else abs(mean - target) <= RATE_TOLERANCE * target)
            rule = (f"at most {100 + 100 * RATE_TOLERANCE:.0f} % of" if ceiling
                    else f"within +-{100 * RATE_TOLERANCE:.0f} % of")
            rows.append(("rate target", f"{target:g} Hz; measured {mean:.2f} Hz ({100 * (mean - target) / target:+.0f} %): "
                         f"{'met' if met else 'not met'}",
                         f"met = mean rate {rule} train.rate_target_hz "
                         f"(regulariser train.rate_reg {cfg.train.rate_reg:g}, form {form})"))
        else:
            rows.append(("rate target", "none (train.rate_reg = 0)", "no firing-rate regulariser"))
    verify = Path(run_dir) / "verify.json"
    if verify.exists():
        try:
            v = read_json_object(verify)
            first = v.get("first_divergence_ms")
            rows.append(("Brian2 agreement", f"{100 * v['identical_trial_fraction']:.1f} % identical trials, "
                         f"{100 * v['spike_match_fraction']:.2f} % spikes matched, first divergence "
                         + ("none" if first is None else f"{first:g} ms")
                         + f"; {v['torch']['metric']} torch {v['torch']['accuracy']:.3f} / Brian2 "
                         f"{v['brian2']['accuracy']:.3f}",
                         f"cognet verify: {v['trials']} held-out trials at dt {v['dt_ms']:g} ms (verify.json)"))
        except (CorruptFileError, KeyError, TypeError, ValueError) as exc:
            rows.append(("Brian2 agreement", "unreadable verify.json", str(exc)))
    else:
        rows.append(("Brian2 agreement", "not verified", f"run `cognet verify {run_dir}`"))
    return rows


def analyze_run(run_dir, source: str = "torch", trials: Optional[int] = None, out_dir=None,
                figures: bool = True) -> Dict[str, Any]:
    """Analyse the held-out spike trains of a run; write analysis.json, figures and the report.

    Returns the analysis dict (as written to analysis.json) with ``report`` (HTML path),
    ``report_md``, ``figures`` and ``out_dir`` added.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    try:
        with run_lock(run_dir), OutputSet(run_dir, f"analysis-{source}") as stage:
            return _analyze(run_dir, source, trials, out_dir, figures, stage, cache=True)
    except OSError as exc:
        if out_dir is None or exc.errno not in _READ_ONLY or Path(out_dir).resolve().is_relative_to(run_dir.resolve()):
            raise
    # the run directory cannot be written: lock and stage in out_dir, cache nothing in the run
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(out_dir), OutputSet(out_dir, f"analysis-{source}") as stage:
        return _analyze(run_dir, source, trials, out_dir, figures, stage, cache=False)


_READ_ONLY = (errno.EACCES, errno.EPERM, errno.EROFS)


def _analyze(run_dir: Path, source: str, trials: Optional[int], out_dir, figures: bool,
             stage: OutputSet, cache: bool) -> Dict[str, Any]:
    t0 = time.perf_counter()
    net, cfg = _load_model(run_dir)
    rec, created = get_record(run_dir, source, trials, net, cfg, stage=stage, cache=cache)
    n_used = rec.trials if trials is None else min(trials, rec.trials)
    z = rec.z[:n_used].numpy()
    active = rec.active[:n_used].numpy() if rec.active is not None else None
    output = "bits" if rec.target.dim() == 3 else "classes"
    codes = answer_codes(rec.target[:, :n_used].numpy(), output)
    a = firing_regime(z, rec.dt_ms, rec.steps_per_symbol, rec.phases, rec.windows, active, rec.channels, codes)
    summary = read_json_object(run_dir / "summary.json") if (run_dir / "summary.json").exists() else {}
    acc = record_accuracy(rec)
    a = {
        "run_dir": str(run_dir), "source": source, "task": rec.task,
        "rule": summary.get("rule", cfg.rule if cfg else None), "seed": summary.get("seed", cfg.seed if cfg else None),
        "record": {"path": str(record_path(run_dir, source)) if (cache or not created) else None,
                   "created": created, "trials_used": n_used,
                   "record_seed": rec.extra.get("seed")},
        "accuracy": acc, **a,
    }
    final = Path(out_dir) if out_dir is not None else run_dir / f"analysis-{source}"
    if final.exists() and not final.is_dir():
        raise FileExistsError(17, "File exists (the output folder is a file)", str(final))
    out = stage.dir / "out"  # staged; moved to `final` as a whole with the record
    out.mkdir(parents=True, exist_ok=True)
    figs: Dict[str, Path] = {}
    if figures:
        alif = net.neurons.array("beta") > 0 if net is not None else None
        trial = 0
        readout = readout_trace(net, z[trial]) if net is not None else None
        n_ch = max(1, len(rec.channels))
        x0 = rec.x[trial].numpy()
        target = rec.target[:, trial].numpy()
        label = f"{rec.task} / {a['rule']} seed {a['seed']} ({source})"
        figs["raster"] = plots.raster_figure(
            out / "raster.png", x0, z[trial], rec.dt_ms, rec.channels or ["input"], max(1, x0.shape[1] // n_ch),
            readout, rec.windows, rec.logits[:, trial].numpy(), target, rec.phases, alif,
            title=f"{label}: held-out trial {trial}", output=output)
        rates = np.asarray(a["rate_hz"]["per_neuron"])
        figs["rates"] = plots.rate_histogram(out / "rates.png", rates, title=f"firing rates, {label}")
        figs["cv_rate"] = plots.cv_vs_rate(out / "cv_rate.png", rates, np.asarray(a["isi_cv"]["per_neuron"]), alif)
        rows = read_jsonl(run_dir / "metrics.jsonl")
        if rows:
            import tasks

            metric = tasks.get_task_class(rec.task).stop_metric if rec.task in tasks.TASKS else "bit_accuracy"
            ch = summary.get("chance") if isinstance(summary.get("chance"), dict) else {}
            figs["learning"] = plots.learning_curves(
                out / "learning.png", {label: rows}, metric=metric, chance=ch.get(metric),
                target=cfg.train.target_accuracy if cfg else None,
                rate_target_hz=cfg.train.rate_target_hz if cfg and cfg.train.rate_reg > 0 else None)
    header = [
        f"cognet analysis: {rec.task} / {a['rule']} / seed {a['seed']} ({source})",
        f"run {run_dir}; {n_used} held-out trials of {rec.T} steps ({rec.T * rec.dt_ms:g} ms), {z.shape[2]} neurons.",
        f"accuracy on these trials: bit {acc['bit_accuracy']:.3f}, sequence {acc['sequence_accuracy']:.3f}"
        + (f"; training summary: {summary.get('iterations')} iterations in {summary.get('wall_s', 0):.1f} s"
           if summary else ""),
    ]
    a["context"] = [list(r) for r in context_rows(run_dir, cfg, summary, rec, source)]
    paths = write_report(out, a, figs, header, [tuple(r) for r in a["context"]])
    a["figures"] = {k: str(final / Path(v).name) for k, v in figs.items()}
    a["report"] = str(final / Path(paths["html"]).name)
    a["report_md"] = str(final / Path(paths["markdown"]).name)
    a["out_dir"] = str(final)
    a["wall_s"] = time.perf_counter() - t0
    write_json(out / "analysis.json", a)
    for f in sorted(out.iterdir()):
        os.replace(f, stage.path(final / f.name))
    stage.commit()
    return a
