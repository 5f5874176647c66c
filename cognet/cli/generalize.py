"""``cognet generalize RUN --param task.n_bits --values 4,6,8,12,16``: a trained run at other
values of a task parameter (see analysis.generalize and cognet.experiments.generalize)."""

from __future__ import annotations

from pathlib import Path

import click

from .common import _fail, _user_errors, emit


def _values(text: str) -> list:
    import yaml

    items = [x.strip() for x in text.split(",")]
    if not text.strip() or any(not x for x in items):
        raise click.BadParameter(f"expects comma-separated values such as 4,6,8, got {text!r}", param_hint="--values")
    return [yaml.safe_load(x) for x in items]


@click.command("generalize")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--param", default="task.n_bits", show_default=True,
              help="the task parameter to vary (it must keep the network's input/output sizes)")
@click.option("--values", "values_text", required=True, metavar="V1,V2,...", help="values to evaluate, e.g. 4,6,8,12,16")
@click.option("--trials", type=click.IntRange(min=1), default=256, show_default=True,
              help="held-out trials per value")
@click.option("--seed", type=int, default=None, help="held-out seed (default: the run's own test stream)")
@click.option("--brian2", is_flag=True, help="replay the longest setting in Brian2 and report spike identity")
@click.option("--brian2-trials", type=click.IntRange(min=1), default=None,
              help="trials replayed in Brian2 (default: --trials)")
@click.option("--brian2-target", type=click.Choice(["numpy", "cython", "cpp_standalone"]), default=None,
              help="Brian2 code generation (default as in `cognet verify`)")
@click.option("--no-figure", is_flag=True, help="write generalize.json only")
@click.option("--json", "as_json", is_flag=True, help="print generalize.json's content on stdout")
def generalize_cmd(run_dir, param, values_text, trials, seed, brian2, brian2_trials, brian2_target, no_figure,
                   as_json) -> None:
    """Evaluate a trained run at other values of a task parameter (e.g. longer numbers).

    Writes generalize.json (and generalize.png: accuracy against the value, the training
    value marked, chance dashed) into RUN_DIR.
    """
    from analysis.generalize import row_summary
    from cognet.brian.bridge import Brian2Unavailable
    from cognet.experiments.generalize import generalize

    values = _values(values_text)
    try:
        res = generalize(Path(run_dir), param, values, trials, seed, brian2, brian2_trials,
                         figure=not no_figure, brian2_target=brian2_target)
    except (*_user_errors(), Brian2Unavailable) as exc:
        _fail(exc)
    lines = row_summary(res)
    b = res.get("brian2")
    if b:
        first = b["first_divergence_ms"]
        lines.append(f"Brian2 at {res['param']}={b['value']} ({b['trials']} trials, {b['target']}): identical spike "
                     f"trains in {100 * b['identical_trial_fraction']:.1f}% of trials, spikes matched "
                     f"{100 * b['spike_match_fraction']:.2f}%, first divergence "
                     + ("none" if first is None else f"{first:g} ms")
                     + f"; {b['metric']} torch {b['torch_accuracy']:.3f}, Brian2 {b['brian2_accuracy']:.3f}")
    lines.append("written: " + ", ".join(res["paths"].values()))
    emit(res, as_json, lines)
