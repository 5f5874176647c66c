"""``cognet export RUN --format F --out PATH`` and ``cognet import FILE --task T --out RUN``
(formats: :mod:`cognet.interchange`; NIR in cognet/interchange/nir.py, the Brian2 script in
cognet/interchange/brian2_script.py; docs/interchange.md)."""

from __future__ import annotations

from pathlib import Path

import click

from .common import _fail, _user_errors, emit


@click.command("export")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--format", "fmt", required=True, metavar="FORMAT",
              help="nir (a NIR graph, .nir file), brian2 (a folder with a plain-Brian2 script), nwb (held-out "
                   "spikes, .nwb file), tensorboard (event files of the training curves), or another registered format (an unknown name lists them); see docs/interchange.md")
@click.option("--out", required=True, type=click.Path(), help="output file (nir) or folder (brian2)")
@click.option("--no-readout", is_flag=True, help="nir: end the graph at the spiking population")
@click.option("--resistance", type=click.Choice(["tau_over_dt", "one"]), default=None,
              help="nir: R = tau/dt with weights as trained (snnTorch's convention, default) or R = 1 with "
                   "weights scaled by tau/dt (Norse's)")
@click.option("--trials", type=click.IntRange(min=1), default=None,
              help="brian2: trials of input to save (default 8)")
@click.option("--poisson", "poisson_rate_hz", type=float, default=None, metavar="RATE_HZ",
              help="brian2: save a fresh Poisson input at this rate instead of the run's verify record")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="brian2: steps of the Poisson input (default: the task's trial length)")
@click.option("--seed", type=int, default=None, help="brian2: seed of the Poisson input (default 0)")
@click.option("--source", type=click.Choice(["torch", "brian2"]), default=None,
              help="nwb: the spike record to export (torch, recorded if missing; or brian2, after `cognet verify`)")
@click.option("--dt-ms", "dt_ms", type=float, default=None,
              help="nwb --source brian2: the Brian2 step of a finer-step `cognet verify --dt-ms` record")
@click.option("--json", "as_json", is_flag=True, help="print what was written as one JSON object")
def export_cmd(run_dir, fmt, out, no_readout, resistance, trials, poisson_rate_hz, steps, seed, source, dt_ms,
               as_json) -> None:
    """Write a trained run in another tool's format: a NIR graph, a plain-Brian2 script, the
    held-out activity as NWB, or the training curves as TensorBoard events."""
    from cognet import interchange

    opts = {}
    if fmt == "nir":
        if no_readout:
            opts["readout"] = False
        if resistance:
            opts["resistance"] = resistance
        ignored = {"--trials": trials, "--poisson": poisson_rate_hz, "--steps": steps, "--seed": seed,
                   "--source": source, "--dt-ms": dt_ms}
    elif fmt == "nwb":
        if trials is not None:
            opts["trials"] = trials
        if source is not None:
            opts["source"] = source
        if dt_ms is not None:
            opts["dt_ms"] = dt_ms
        ignored = {"--no-readout": no_readout or None, "--resistance": resistance, "--poisson": poisson_rate_hz,
                   "--steps": steps, "--seed": seed}
    elif fmt == "brian2":
        if trials is not None:
            opts["trials"] = trials
        if poisson_rate_hz is not None:
            opts.update(source="poisson", poisson_rate_hz=poisson_rate_hz)
        if steps is not None:
            opts["steps"] = steps
        if seed is not None:
            opts["seed"] = seed
        ignored = {"--no-readout": no_readout or None, "--resistance": resistance, "--source": source, "--dt-ms": dt_ms}
    else:
        ignored = {"--no-readout": no_readout or None, "--resistance": resistance, "--trials": trials,
                   "--poisson": poisson_rate_hz, "--steps": steps, "--seed": seed, "--source": source, "--dt-ms": dt_ms}
    try:
        used = [k for k, v in ignored.items() if v is not None]
        if used:
            raise ValueError(f"option(s) {', '.join(used)} do not apply to --format {fmt}")
        func = interchange.exporter(fmt)
        res = func(Path(run_dir), Path(out), **opts)
    except _user_errors() as exc:
        _fail(exc)
    where = res.get("path") or res.get("out_dir") or res.get("out") or out
    detail = (f" ({res['neurons']} neurons, dt {res['dt_ms']:g} ms)" if "neurons" in res and "dt_ms" in res else "")
    lines = [f"{fmt}: {where}{detail}"]
    if fmt == "brian2":
        lines.append(f"input: {res['input']} ({res['trials']} trials of {res['steps']} steps); run: {res['run']}")
    emit(res, as_json, lines)


@click.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--task", required=True, help="the task whose input the network reads (see `cognet tasks`)")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="the run directory to create")
@click.option("--format", "fmt", default="nir", show_default=True, metavar="FORMAT", help="input format")
@click.option("--set", "sets", multiple=True, metavar="task.KEY=VALUE",
              help="task parameter, e.g. --set task.n_bits=4 (repeatable)")
@click.option("--dt-ms", "dt_ms", type=float, default=None,
              help="time step in ms (default: the file's cognet.dt_ms metadata, else tau / R)")
@click.option("--seed", type=int, default=0, show_default=True, help="run seed (its held-out trials)")
@click.option("--trials", type=click.IntRange(min=1), default=256, show_default=True,
              help="held-out trials for summary.json")
@click.option("--json", "as_json", is_flag=True)
def import_cmd(file, task, out, fmt, sets, dt_ms, seed, trials, as_json) -> None:
    """Turn a NIR LIF network into a cognet run directory (cognet verify / analyze accept it)."""
    from cognet import interchange
    from cognet.training.config import ConfigError, parse_sets

    try:
        params = {}
        for key, value in parse_sets(sets):
            if not key.startswith("task.") or key.count(".") != 1:
                raise ConfigError(f"cognet import --set takes task parameters (task.KEY=VALUE), got {key!r}")
            params[key[5:]] = value
        func = interchange.importer(fmt)
        opts = {"dt_ms": dt_ms} if dt_ms is not None else {}
        res = func(Path(file), Path(out), task=task, task_params=params, seed=seed, trials=trials, **opts)
    except _user_errors() as exc:
        _fail(exc)
    src = res["imported"]
    emit(res, as_json, [
        f"imported {file} ({res['n_rec']} LIF neurons, dt {src['dt_ms']:g} ms, readout "
        f"{'from the file' if src['readout'] else 'zero: the file has none with the task outputs'}) -> {res['run_dir']}",
        f"{task} held-out ({res['eval_trials']} trials): bit accuracy {res['bit_accuracy']:.3f}, sequence accuracy "
        f"{res['sequence_accuracy']:.3f}, mean rate {res['mean_rate_hz']:.2f} Hz",
        f"next: cognet verify {res['run_dir']}; cognet analyze {res['run_dir']}",
    ])
