"""TensorBoard event files for runs trained without ``train.tensorboard``.

``cognet export RUN --format tensorboard --out DIR`` (or :func:`export_run`) replays the
run's ``metrics.jsonl``, ``config.yaml`` and ``summary.json`` through the same writer the
trainer uses (:class:`cognet.training.tensorboard.TensorBoardLog`): the same tags, steps and
HParams as a run trained with ``train.tensorboard = true``, without training again. To
browse a whole sweep, export each run into its own sub-folder of one ``DIR``::

    for d in runs/sweep/*/; do cognet export "$d" --format tensorboard --out tb/$(basename "$d"); done
    tensorboard --logdir tb

A folder that already holds event files is refused (nothing is appended to or overwritten).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import yaml

from cognet.training.io import read_json, read_jsonl


def export_run(run_dir, out, **options: Any) -> Dict[str, Any]:
    """Write the TensorBoard events of ``run_dir`` into the folder ``out``; return what was written."""
    from cognet.training.tensorboard import TensorBoardLog

    if options:
        raise ValueError(f"unknown tensorboard export option(s) {sorted(options)}; it takes none")
    run_dir, out = Path(run_dir), Path(out)
    metrics, config_path = run_dir / "metrics.jsonl", run_dir / "config.yaml"
    for p in (metrics, config_path):
        if not p.exists():
            raise FileNotFoundError(f"{p} does not exist: {run_dir} is not a cognet run directory")
    rows = read_jsonl(metrics)
    if not rows:
        raise ValueError(f"{metrics} holds no iterations yet")
    if out.exists() and (not out.is_dir() or any(out.glob("events.out.tfevents.*"))):
        raise ValueError(f"{out} already holds TensorBoard events (or is a file); choose another --out")
    config = yaml.safe_load(config_path.read_text())
    summary = read_json(run_dir / "summary.json") if (run_dir / "summary.json").exists() else None
    log = TensorBoardLog(out, purge_step=1)
    for r in rows:
        log.log(r)
    if summary is not None:
        log.finish(config, summary)
    else:
        log.close()  # an unfinished run: curves only, no HParams (no held-out test scores yet)
    return {"format": "tensorboard", "path": str(out), "neurons": config["network"]["n_rec"],
            "dt_ms": config["network"]["dt_ms"], "iterations": sum(1 for r in rows if not r.get("eval")),
            "evaluations": sum(1 for r in rows if r.get("eval")), "hparams": summary is not None}
