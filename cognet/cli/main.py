"""The ``cognet`` command line (click).

    cognet tasks                          list the tasks
    cognet rules                          list the learning rules
    cognet train --task T --rule R ...    train one configuration into a run directory
    cognet eval DIR                       re-score a trained run on fresh held-out trials
    cognet demo                           train the default task and report (the README's main job)
    cognet generalize DIR --values 4,8,16 a trained run at other task-parameter values (cli/generalize.py)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import click

from cognet.training.io import dumps

from .align import align_cmd
from .analysis import analysis_lines, analyze_cmd, compare_cmd
from .common import DEBUG, _fail, _user_errors, emit, plugin_option
from .experiment import experiment_cmd, reproduce_cmd, sweep_cmd
from .generalize import generalize_cmd
from .interchange import export_cmd, import_cmd
from .verify import verify_cmd, verify_lines


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cognet")
@click.option("--debug", is_flag=True, help="show the Python traceback of an error (also COGNET_DEBUG=1)")
def main(debug: bool) -> None:
    """cognet: recurrent spiking networks (LIF/ALIF) that learn symbolic bit-sequence and
    arithmetic tasks, trained with surrogate-gradient BPTT or e-prop, verified in Brian2."""
    import os

    DEBUG["on"] = bool(debug or os.environ.get("COGNET_DEBUG"))


def _plugins_from_env() -> None:
    from cognet.training.plugins import ensure_loaded

    try:
        ensure_loaded()
    except _user_errors() as exc:
        _fail(exc)


@main.command("tasks")
@click.option("--json", "as_json", is_flag=True, help="print the task list as JSON")
def tasks_cmd(as_json: bool) -> None:
    """List the available tasks, one line each (plug-ins included)."""
    import tasks

    _plugins_from_env()

    rows = [tasks.get_task(name).describe() for name in sorted(tasks.TASKS)]
    if as_json:
        click.echo(dumps(rows, indent=None))
        return
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        click.echo(f"{r['name']:<{width}}  {r['summary']}")


@main.command("rules")
def rules_cmd() -> None:
    """List the available learning rules, one line each (plug-ins included)."""
    import rules

    _plugins_from_env()

    width = max(len(n) for n in rules.RULES)
    for name in sorted(rules.RULES):
        click.echo(f"{name:<{width}}  {rules.RULES[name].summary}")


def _ci(s: Dict[str, Any]) -> str:
    """' (95 % CI lo-hi)' for a result carrying ``sequence_accuracy_ci95`` (older runs don't)."""
    ci = s.get("sequence_accuracy_ci95")
    return f" (95 % CI {ci[0]:.3f}-{ci[1]:.3f})" if ci else ""


def _stop_line(s: Dict[str, Any]) -> str:
    """How training ended, with the early-stop criterion on the validation stream."""
    how = f"{s['iterations']} iterations in {s['wall_s']:.1f} s"
    metric, target = s.get("stop_metric"), s.get("target_accuracy")
    if s.get("stopped_early"):
        if metric and s.get("stop_score") is not None and target is not None:
            how += f"; early stop: validation {metric} {s['stop_score']:.3f} >= target {target:g}"
        else:
            how += " (early stop)"
    elif metric and target is not None and s.get("validation_best") is not None:
        how += f"; no early stop (best validation {metric} {s['validation_best']:.3f} < target {target:g})"
    if "best_iteration" in s:
        how += f"; model: best validation score, at iteration {s['best_iteration']}"
    return how


def _summary_lines(s: Dict[str, Any], out: Optional[Path]) -> list:
    lines = [
        f"task {s['task']}  rule {s['rule']}  seed {s['seed']}  ({s['n_rec']} neurons)",
        f"test ({s['eval_trials']} held-out trials, never used in training or stopping): bit accuracy "
        f"{s['bit_accuracy']:.3f}, sequence accuracy {s['sequence_accuracy']:.3f}{_ci(s)}  "
        f"(chance {s['chance']['bit_accuracy']:.3f} / {s['chance']['sequence_accuracy']:.3f})",
        f"firing: mean rate {s['mean_rate_hz']:.2f} Hz, silent neurons {100 * s['silent_fraction']:.1f}%"
        + (f"; conv front end ({s['n_conv']} neurons) {s['conv_mean_rate_hz']:.2f} Hz" if "conv_mean_rate_hz" in s else ""),
        _stop_line(s),
    ]
    if s.get("resumed") == "already complete":
        lines.insert(0, "run already complete; reporting its summary (use --restart to train again)")
    if out is not None:
        lines.append(f"run directory: {out}")
    return lines


def train_options(f):
    f = click.option("--task", "task", default=None, help="task name (see `cognet tasks`); default add")(f)
    f = click.option("--rule", "rule", default=None, help="learning rule (see `cognet rules`); default bptt")(f)
    f = click.option("--seed", type=int, default=None, help="run seed (default 0)")(f)
    f = click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
                     help="YAML file with config sections (network, surrogate, train, task)")(f)
    f = click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                     help="override one config key, e.g. --set network.n_rec=200 (repeatable)")(f)
    return f


@main.command("train")
@train_options
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="run directory (default runs/<task>-<rule>-seed<seed>-<config hash>)")
@click.option("--restart", is_flag=True, help="discard an unfinished or finished run in --out and train anew")
@click.option("--json", "as_json", is_flag=True,
              help="print the summary as one JSON object on stdout (progress stays on stderr)")
@click.option("--quiet", is_flag=True, help="no progress bar (on stderr)")
def train_cmd(task, rule, seed, config_file, sets, out, restart, as_json, quiet) -> None:
    """Train a network on a task; resumes an interrupted run in the same --out."""
    from cognet.training.config import build_config
    from cognet.training.trainer import default_run_dir, train

    try:
        cfg = build_config(task, rule, seed, config_file, sets)
        out_dir = Path(out) if out else default_run_dir(cfg)
        summary = train(cfg, out_dir, progress=not quiet, restart=restart)  # progress goes to stderr
    except _user_errors() as exc:
        _fail(exc)
    emit({**summary, "run_dir": str(out_dir)}, as_json, _summary_lines(summary, out_dir))


@main.command("eval")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--trials", type=click.IntRange(min=1), default=None,
              help="held-out trials (default: 256; digits: every test image once)")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=None,
              help="held-out seed (default: the run's own held-out stream)")
@click.option("--early-exit", "early", default=None, metavar="K1,K2,...",
              help="also score the answers read K steps earlier (temporal early exit, analysis.early_exit)")
@click.option("--json", "as_json", is_flag=True)
def eval_cmd(run_dir, trials, seed, early, as_json) -> None:
    """Score a trained run on fresh held-out trials."""
    from cognet.training.trainer import eval_run

    try:
        ks = None
        if early is not None:
            try:
                ks = [int(v) for v in str(early).split(",") if v.strip()]
            except ValueError:
                raise ValueError(f"--early-exit expects integers K1,K2,..., got {early!r}") from None
        res = eval_run(Path(run_dir), trials, seed)
        trials = res["trials"]
        if ks is not None:
            import tasks
            from analysis.early_exit import early_exit
            from cognet.training.model import load_model

            net, cfg = load_model(Path(run_dir) / "model.safetensors")
            task = tasks.get_task(cfg.task, cfg.task_params, cfg.network.dt_ms)
            res["early_exit"] = early_exit(net, task, ks, trials, res["eval_seed"])["rows"]
    except _user_errors() as exc:
        _fail(exc)
    res.pop("rates_hz", None)
    lines = [
        f"{res['task']} / {res['rule']} seed {res['seed']}: {trials} held-out trials (seed {res['eval_seed']})",
        f"bit accuracy {res['bit_accuracy']:.3f}, sequence accuracy {res['sequence_accuracy']:.3f}{_ci(res)}, "
        f"mean rate {res['mean_rate_hz']:.2f} Hz, silent {100 * res['silent_fraction']:.1f}%"
        + (f", conv front end {res['conv_mean_rate_hz']:.2f} Hz" if "conv_mean_rate_hz" in res else ""),
    ]
    for r in res.get("early_exit", []):
        lines.append(f"read {r['k']} steps ({r['saved_ms']:g} ms) earlier: bit accuracy {r['bit_accuracy']:.3f}, "
                     f"sequence accuracy {r['sequence_accuracy']:.3f}")
    emit(res, as_json, lines)


@main.command("demo")
@click.option("--out", type=click.Path(file_okay=False), default="runs/demo", show_default=True)
@click.option("--task", default="add", show_default=True)
@click.option("--restart", is_flag=True, help="train anew even if runs/demo holds a finished run")
@click.option("--json", "as_json", is_flag=True)
def demo_cmd(out, task, restart, as_json) -> None:
    """Train the default task, verify it in Brian2, and print the firing-regime summary."""
    from cognet.training.config import build_config
    from cognet.training.trainer import train

    out_dir = Path(out)
    try:
        cfg = build_config(task=task)
        summary = train(cfg, out_dir, progress=True, restart=restart)  # progress goes to stderr
    except _user_errors() as exc:
        _fail(exc)
    report: Dict[str, Any] = {"train": summary, "run_dir": str(out_dir)}
    lines = ["== training"] + _summary_lines(summary, out_dir)
    from analysis.run import analyze_run

    from cognet.brian.replay import verify_run

    try:
        verification = verify_run(out_dir)
        analysis = analyze_run(out_dir, source="torch")
    except _user_errors() as exc:
        _fail(exc)
    report["verify"] = verification
    lines += ["", "== Brian2 verification (same weights, same held-out input spikes)"] + verify_lines(verification)
    report["analysis"] = analysis
    lines += ["", "== firing-regime analysis (torch, held-out trials)"] + analysis_lines(analysis)
    emit(report, as_json, lines)


_COMMANDS = (
    verify_cmd,
    analyze_cmd,
    compare_cmd,
    experiment_cmd,
    sweep_cmd,
    reproduce_cmd,
    align_cmd,
    generalize_cmd,
    export_cmd,
    import_cmd,
)
for _cmd in _COMMANDS:
    main.add_command(_cmd)
# every command accepts --plugin MODULE (third-party tasks and rules; cognet.training.plugins)
for _cmd in main.commands.values():
    _cmd.params.append(plugin_option())

if __name__ == "__main__":  # pragma: no cover
    main()
