"""Click commands ``cognet analyze`` and ``cognet compare`` (registered in cognet/cli.py)."""

from __future__ import annotations

from pathlib import Path

import click

from .common import _fail, _user_errors, emit


def analysis_lines(a) -> list:
    from analysis.report import summary_rows

    acc = a["accuracy"]
    lines = [f"{a['task']} / {a['rule']} seed {a['seed']} ({a['source']}): {a['trials']} held-out trials, "
             f"bit accuracy {acc['bit_accuracy']:.3f}, sequence accuracy {acc['sequence_accuracy']:.3f}"]
    width = 30
    lines += [f"  {name:<{width}} {value}" for name, value, _ in summary_rows(a)]
    lines.append(f"report: {a['report']}  (also {Path(a['report_md']).name}; figures and analysis.json in {a['out_dir']})")
    return lines


@click.command("analyze")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--source", type=click.Choice(["torch", "brian2"]), default="torch", show_default=True,
              help="spike trains to analyse: torch (recorded here if missing) or brian2 (from `cognet verify`)")
@click.option("--trials", type=click.IntRange(min=1), default=None,
              help="held-out trials to analyse (default: all in the record; 256 when recording)")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="output folder (default RUN_DIR/analysis-<source>)")
@click.option("--json", "as_json", is_flag=True, help="print the analysis as one JSON object")
def analyze_cmd(run_dir, source, trials, out, as_json) -> None:
    """Firing-regime statistics, figures and a one-page report for a trained run."""
    from analysis.run import analyze_run

    try:
        a = analyze_run(Path(run_dir), source=source, trials=trials, out_dir=out)
    except _user_errors() as exc:
        _fail(exc)
    emit(a, as_json, analysis_lines(a))


@click.command("compare")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default="runs/compare", show_default=True,
              help="folder for the figures and compare.json")
@click.option("--no-figures", is_flag=True, help="print the table only")
@click.option("--json", "as_json", is_flag=True, help="print the rows as JSON")
def compare_cmd(run_dirs, out, no_figures, as_json) -> None:
    """Compare runs side by side: accuracy, rate, iterations, wall time, peak memory; figures per rule."""
    from analysis.compare import compare_runs, format_table

    try:
        res = compare_runs([Path(d) for d in run_dirs], None if no_figures else Path(out), figures=not no_figures)
    except _user_errors() as exc:
        _fail(exc)
    lines = format_table(res["runs"])
    if res["figures"]:
        lines.append("figures: " + ", ".join(res["figures"].values()))
    emit(res, as_json, lines)
