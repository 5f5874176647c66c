"""Command line for sweeps: ``cognet experiment NAME``, ``cognet sweep`` and ``cognet reproduce``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict, List

import click

from .common import _fail, _user_errors, emit


def _executor_options(f):
    f = click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
                     help="local worker processes (one torch thread each)")(f)
    f = click.option("--executor", type=click.Choice(["local", "slurm"]), default="local", show_default=True,
                     help="local processes, or a Slurm job array via submitit (pip install submitit)")(f)
    f = click.option("--partition", default=None, help="slurm: partition")(f)
    f = click.option("--time-min", type=click.IntRange(min=1), default=60, show_default=True,
                     help="slurm: time limit per run (minutes)")(f)
    return f


def _slurm(partition, time_min):
    from cognet.experiments.sweep import SlurmOptions

    return SlurmOptions(partition=partition, time_min=time_min)


def _parse_axes(items) -> Dict[str, List[Any]]:
    """``KEY=V1,V2,...`` items -> {key: [values]} (values parsed as YAML scalars)."""
    import yaml

    ax: Dict[str, List[Any]] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--axis expects KEY=V1,V2,..., got {item!r}")
        k, v = item.split("=", 1)
        vals = [yaml.safe_load(x) for x in v.split(",") if x.strip()]
        if not k.strip() or not vals:
            raise ValueError(f"--axis expects KEY=V1,V2,..., got {item!r}")
        ax[k.strip()] = vals
    return ax


@click.command("experiment")
@click.argument("name", type=click.Choice(["surrogate-scale", "reset-gradient", "leak-aware", "rules", "sparse",
                                         "length-generalization"]))
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="experiment folder (default runs/experiments/NAME)")
@click.option("--grid", "grid_", type=click.Choice(["small", "full", "paper"]), default="small", show_default=True,
              help="small: 5 seeds on add, 1000 iterations; full: more levels, every task, the task's own budget; "
                   "paper: 10 seeds on the tasks the claim is about, 2000 iterations (prints its estimate first)")
@click.option("--seeds", type=click.IntRange(min=1), default=None, help="seeds 0..N-1 (default: per experiment)")
@click.option("--iterations", type=click.IntRange(min=1), default=None,
              help="training iterations per run (default: 1000 on the small grid)")
@click.option("--task", "tasks_", multiple=True, help="task(s) to run on (repeatable; default add, full: all)")
@click.option("--scale-param", type=click.Choice(["width", "peak"]), default="width", show_default=True,
              help="surrogate-scale: the knob the scale factor multiplies")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="YAML config applied to every run")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="override a config key in every run")
@click.option("--retry-failed", is_flag=True, help="train runs recorded as diverged again")
@click.option("--axis", "axes", multiple=True, metavar="KEY=V1,V2,...",
              help="sparse: an extra grid axis over a config key, e.g. --axis network.n_rec=100,300 "
                   "--axis task.step_ms=20,40 --axis train.iterations=1000,3000 (repeatable)")
@click.option("--no-estimate", is_flag=True, help="do not measure and print the time estimate first")
@_executor_options
@click.option("--json", "as_json", is_flag=True, help="print the result as one JSON object")
def experiment_cmd(name, out, grid_, seeds, iterations, tasks_, scale_param, config_file, sets, retry_failed,
                   axes, no_estimate, jobs, executor, partition, time_min, as_json) -> None:
    """Run a seed-paper claim as a sweep; write a table, a figure and a measured verdict.

    \b
    surrogate-scale  accuracy vs surrogate shape and scale (Zenke & Vogels 2021)
    reset-gradient   gradient through the reset on/off vs learning rate (arXiv 2011.09964)
    leak-aware       leak-aware derivative vs plain surrogate (Lee et al. 2020)
    rules            BPTT vs the e-prop variants (Bellec et al. 2020)
    sparse           accuracy vs firing-rate target
    length-generalization  trained at the default length, tested up to 4x (symbolic computation)

    Re-running skips finished runs and resumes killed ones.
    """
    from cognet.experiments.claims import Options, run_experiment

    try:
        extra = _parse_axes(axes)
    except ValueError as exc:
        _fail(exc)
    opts = Options(out=Path(out or f"runs/experiments/{name}"), grid=grid_, seeds=seeds, iterations=iterations,
                   tasks=tasks_, sets=sets, config_file=config_file, jobs=jobs, executor=executor,
                   retry_failed=retry_failed, scale_param=scale_param, slurm=_slurm(partition, time_min), axes=extra)
    bar = _RunBar(as_json)
    try:
        res = run_experiment(name, opts, bar.log, progress=bar.progress, estimate_first=not no_estimate)
    except _user_errors() + (RuntimeError,) as exc:
        bar.close()
        _fail(exc)
    bar.close()
    from cognet.experiments.sweep import markdown_table

    emit({k: v for k, v in res.items() if k not in ("columns", "headers")}, as_json,
         ["", markdown_table(res["table"], res["columns"], res["headers"]), res["verdict"], "",
          f"{res['n_runs']} runs ({res['errors']} errors) in {res['wall_s']:.0f} s; "
          f"results in {res['paths']['md']}, figure {res['paths']['figure']}"])


class _RunBar:
    """A progress bar over runs on stderr (tqdm), and log lines that do not tear it."""

    def __init__(self, as_json: bool, enabled: bool = True) -> None:
        self.bar = None
        self.as_json = as_json
        self.enabled = enabled

    def log(self, s: str) -> None:
        if self.bar is not None:
            self.bar.write(s, file=sys.stderr)
        else:
            click.echo(s, err=self.as_json)

    def progress(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=done, desc="runs", unit="run", file=sys.stderr, dynamic_ncols=True)
        else:
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _status_lines(res: Dict[str, Any]) -> List[str]:
    c = res["counts"]
    lines = [f"{res['folder']}: {len(res['runs'])} runs: " + ", ".join(f"{c[k]} {k}" for k in c)]
    if not res.get("slurm_reachable", True):
        lines.append("(Slurm did not answer: runs on Slurm may show as pending)")
    for r in res["runs"]:
        lab = ", ".join(f"{a}={b}" for a, b in r["labels"].items())
        lines.append(f"  {r['status']:<8} {lab}  {r['detail']}  [{Path(r['run_dir']).name}]")
    return lines


@click.command("sweep")
@click.option("--axis", "axes", multiple=True, metavar="KEY=V1,V2,...",
              help="a grid axis over a config key, e.g. --axis task=add,copy --axis seed=0,1,2 (repeatable)")
@click.option("--status", "status_of", type=click.Path(file_okay=False), default=None, metavar="FOLDER",
              help="list the runs of the sweep (or experiment) in FOLDER as done/running/failed/pending; "
                   "trains nothing")
@click.option("--out", type=click.Path(file_okay=False), default="runs/sweep", show_default=True)
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="override a config key in every run")
@click.option("--no-estimate", is_flag=True, help="do not measure and print the time estimate first")
@_executor_options
@click.option("--json", "as_json", is_flag=True)
def sweep_cmd(axes, status_of, out, config_file, sets, no_estimate, jobs, executor, partition, time_min,
              as_json) -> None:
    """Train the Cartesian product of config axes (resumable); write results.md/.csv/.json.

    Prints an estimate first (runs x measured seconds per iteration x iterations) and a
    progress bar over runs on stderr. ``--status FOLDER`` lists the runs of a sweep instead.
    """
    import yaml

    from cognet.training.io import atomic_write, write_json
    from cognet.experiments.sweep import (NO_RESULT, aggregate, execute, grid, make_runs, markdown_table,
                                          sweep_status, write_csv, write_manifest)

    if status_of is not None:
        try:
            res = sweep_status(Path(status_of))
        except _user_errors() as exc:
            _fail(exc)
        emit(res, as_json, _status_lines(res))
        return
    if not axes:
        _fail(ValueError("give at least one --axis KEY=V1,V2,... (or --status FOLDER)"))
    bar = _RunBar(as_json)
    try:
        ax: Dict[str, List[Any]] = {}
        for item in axes:
            if "=" not in item:
                raise ValueError(f"--axis expects KEY=V1,V2,..., got {item!r}")
            k, v = item.split("=", 1)
            k = k.strip()
            if k in ax:
                raise ValueError(f"--axis {k} is given twice; give all its values in one --axis {k}=V1,V2,...")
            try:
                ax[k] = [yaml.safe_load(x) for x in v.split(",") if x.strip()]
            except yaml.YAMLError as exc:
                raise ValueError(f"--axis {k}: {v!r} holds an invalid value ({str(exc).splitlines()[0]})") from None
            if not ax[k]:
                raise ValueError(f"--axis {k} has no values")
        runs = make_runs(grid(ax), dict, Path(out) / "runs", base_sets=list(sets), config_file=config_file)
        write_manifest(Path(out) / "sweep.json", "sweep", runs, {"axes": ax, "sets": list(sets)})
        rows = execute(runs, executor, jobs, Path(out) / "slurm", False, _slurm(partition, time_min), bar.log,
                       progress=bar.progress, estimate_first=not no_estimate)
    except _user_errors() as exc:
        bar.close()
        _fail(exc)
    bar.close()
    for r, run in zip(rows, runs):
        r.update({f"axis:{k}": v for k, v in run.labels.items()})
    keys = [f"axis:{k}" for k in ax if k != "seed"]
    kept = [r for r in rows if r["status"] not in NO_RESULT] or rows
    table = aggregate(kept, keys) if keys else aggregate(kept, ["task"])
    cols = (keys or ["task"]) + ["accuracy_mean", "accuracy_std", "n", "mean_rate_hz_mean", "iterations_mean",
                                 "wall_s_mean", "diverged"]
    heads = [c.replace("axis:", "") for c in (keys or ["task"])] + ["accuracy", "sd", "runs", "rate (Hz)", "iterations",
                                                                   "wall (s)", "diverged"]
    md = markdown_table(table, cols, heads)
    lost = [r for r in rows if r["status"] in NO_RESULT]
    if lost:
        md += "\nRuns without a result (re-run the sweep to retry or resume them):\n\n" + "".join(
            f"- {r['status']}: `{r['run_dir']}`: {str(r.get('error', '')).splitlines()[0] if r.get('error') else ''}\n"
            for r in lost)
    atomic_write(Path(out) / "results.md", md)
    write_csv(Path(out) / "results.csv", rows, list(rows[0]))
    write_json(Path(out) / "results.json", {"axes": ax, "table": table, "runs": rows})
    emit({"table": table, "runs": rows}, as_json, ["", md])


@click.command("reproduce")
@click.option("--out", type=click.Path(file_okay=False), default="runs/reproduce", show_default=True)
@click.option("--rule", "rules_", multiple=True, help="rules (repeatable; default bptt and eprop-random)")
@click.option("--task", "tasks_", multiple=True, help="tasks (repeatable; default every registered task)")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="override a config key in every run")
@click.option("--no-brian2", is_flag=True, help="skip the Brian2 verification")
@click.option("--estimate", "estimate_only", is_flag=True,
              help="measure the time per iteration of each run, print the estimate and stop")
@click.option("--max-hours", type=click.FloatRange(min=0, min_open=True), default=None,
              help="refuse to start if the training estimate exceeds this many hours")
@click.option("--yes", "-y", is_flag=True, help="start without asking, whatever the estimate")
@click.option("--max-iterations", "caps", multiple=True, metavar="[RULE=]N",
              help="cap the iteration budget of RULE's runs (or of every run) at N, e.g. eprop-random=2000 "
                   "(repeatable; printed with the estimate)")
@_executor_options
@click.option("--json", "as_json", is_flag=True)
def reproduce_cmd(out, rules_, tasks_, seed, sets, no_brian2, estimate_only, max_hours, yes, caps, jobs, executor,
                  partition, time_min, as_json) -> None:
    """Train every task with BPTT and e-prop, verify in Brian2, write one Markdown table.

    First measures each run's time per iteration and prints an estimate (an upper bound: the
    iteration budgets; early stopping shortens it). On a terminal it asks before starting
    more than an hour of training (--yes skips the question; --max-hours refuses instead).
    """
    import sys

    from cognet.experiments.reproduce import DEFAULT_RULES, estimate, estimate_lines, parse_caps, reproduce

    log = (lambda s: click.echo(s, err=True)) if as_json else click.echo
    try:
        cap_map = parse_caps(caps)
        click.echo("measuring the time per iteration of each run ...", err=True)
        est = estimate(Path(out), rules_ or DEFAULT_RULES, tasks_, seed, sets, caps=cap_map)
    except _user_errors() as exc:
        _fail(exc)
    for line in estimate_lines(est):
        log(line)
    hours = est["max_s"] / 3600.0
    if estimate_only:
        emit({"estimate": est}, as_json)
        return
    if max_hours is not None and hours > max_hours:
        _fail(ValueError(f"the training estimate ({hours:.2f} h) exceeds --max-hours {max_hours:g}; "
                         "pick fewer tasks/rules (--task, --rule) or lower train.iterations with --set"))
    if not yes and hours > 1.0 and sys.stdin.isatty() and not click.confirm("start?", default=True, err=True):
        raise SystemExit(1)
    try:
        res = reproduce(Path(out), rules_ or DEFAULT_RULES, tasks_, seed, sets, not no_brian2, jobs, executor,
                        _slurm(partition, time_min), log, caps=cap_map)
    except _user_errors() as exc:
        _fail(exc)
    emit(res, as_json, ["", res["markdown"], "", f"written to {res['path']}"])
