"""``cognet align``: e-prop's gradient against BPTT's along a training run (cognet.experiments.alignment)."""

from __future__ import annotations

from pathlib import Path

import click

from .common import _fail, _user_errors, emit


@click.command("align")
@click.option("--task", default="add", show_default=True, help="task name (see `cognet tasks`)")
@click.option("--rule", default="bptt", show_default=True, help="the rule that trains (the trajectory)")
@click.option("--compare", "compare_rules", default="eprop-symmetric,eprop-random", show_default=True,
              help="comma-separated rules whose gradients are compared with BPTT's")
@click.option("--every", type=click.IntRange(min=1), default=25, show_default=True,
              help="measure every N iterations")
@click.option("--with-regulariser", is_flag=True,
              help="compare gradients of the full loss (default: the task loss alone; the rate regulariser's "
                   "gradient is local, the same in both, and would hide the difference)")
@click.option("--seed", type=int, default=None, help="run seed (default 0)")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None, help="YAML config file")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="override one config key (repeatable)")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="output folder for alignment.json and alignment.png (default runs/align-<task>-seed<seed>)")
@click.option("--json", "as_json", is_flag=True, help="print the result as one JSON object")
def align_cmd(task, rule, compare_rules, every, with_regulariser, seed, config_file, sets, out, as_json) -> None:
    """Cosine between e-prop's and BPTT's gradients on the same batches, over training."""
    from cognet.experiments.alignment import PARAMS, gradient_alignment, write_alignment
    from cognet.training.config import build_config

    try:
        cfg = build_config(task=task, rule=rule, seed=seed, config_file=config_file, sets=list(sets))
        out_dir = Path(out) if out else Path("runs") / f"align-{cfg.task}-seed{cfg.seed}"
        say = (lambda s: None) if as_json else (lambda s: click.echo(s, err=True))
        res = gradient_alignment(cfg, [r.strip() for r in compare_rules.split(",") if r.strip()], every, log=say,
                                 with_regulariser=with_regulariser)
        files = write_alignment(res, out_dir)
    except _user_errors() as exc:
        _fail(exc)
    lines = [f"{cfg.task}: gradient alignment with BPTT along a {cfg.rule} run of {cfg.train.iterations} iterations "
             f"(every {every})", f"  {'rule':<16} " + " ".join(f"{p:>12}" for p in (*PARAMS, "all"))]
    for r, per in res["summary"].items():
        lines.append(f"  {r:<16} " + " ".join(f"{per[p]['mean_cosine']:>12.3f}" if p in per else f"{'-':>12}"
                                                 for p in (*PARAMS, "all")))
    lines.append("  (mean cosine over the measurements; 1 = same direction as BPTT; "
                 + ("full loss)" if with_regulariser else "task loss only)"))
    lines.append(f"written: {files['json']}, {files['figure']}")
    emit({**res, "files": files}, as_json, lines)
