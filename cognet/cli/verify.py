"""``cognet verify DIR``: replay held-out trials of a trained run in Brian2 (see cognet.brian.replay)."""

from __future__ import annotations

from pathlib import Path

import click

from .common import _fail, _user_errors, emit


@click.command("verify")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--trials", type=click.IntRange(min=1), default=None,
              help="held-out trials to replay (default: 256; digits: every test image once)")
@click.option("--dt-ms", "dt_ms", type=float, default=None,
              help="Brian2 time step in ms (default: the training step; a finer one must divide it)")
@click.option("--target", type=click.Choice(["numpy", "cython", "cpp_standalone"]), default=None,
              help="Brian2 code generation (default: cython once compiled for this model, else numpy)")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=None,
              help="held-out seed (default: the run's own test stream)")
@click.option("--json", "as_json", is_flag=True, help="print verify.json's content on stdout")
def verify_cmd(run_dir, trials, dt_ms, target, seed, as_json) -> None:
    """Rebuild a trained run in Brian2, replay held-out trials and compare with torch.

    Writes verify.json, spikes-torch.safetensors and spikes-brian2.safetensors into RUN_DIR
    (at a finer --dt-ms: verify-dt<DT>.json and spikes-brian2-dt<DT>.safetensors), as one set.
    """
    from cognet.brian.bridge import Brian2Unavailable
    from cognet.brian.replay import verify_run

    try:
        res = verify_run(Path(run_dir), trials=trials, dt_ms=dt_ms, target=target, seed=seed)
    except (*_user_errors(), Brian2Unavailable) as exc:
        _fail(exc)
    emit(res, as_json, verify_lines(res))


def verify_lines(res) -> list:
    """Human-readable summary of a verify_run result."""
    t, b = res["torch"], res["brian2"]
    first = res["first_divergence_ms"]
    return [
        f"{res['task']} / {res['rule']}: {res['trials']} held-out trials in Brian2 ({res['target']}), "
        f"dt {res['dt_ms']:g} ms (trained at {res['train_dt_ms']:g} ms)",
        f"identical spike trains: {100 * res['identical_trial_fraction']:.1f}% of trials; spikes matched "
        f"{100 * res['spike_match_fraction']:.2f}%; first divergence "
        + ("none" if first is None else f"{first:g} ms"),
        f"{t['metric']}: torch {t['accuracy']:.4f}, Brian2 {b['accuracy']:.4f}; mean rate torch "
        f"{t['mean_rate_hz']:.2f} Hz, Brian2 {b['mean_rate_hz']:.2f} Hz",
        f"Brian2 wall time {b['wall_s']:.1f} s (build {b['build_s']:.1f} s, run {b['run_s']:.1f} s)",
    ] + ([f"conv front end ({res['conv']['n_conv']} neurons): identical spike trains "
          f"{100 * res['conv']['identical_trial_fraction']:.1f}% of trials, spikes matched "
          f"{100 * res['conv']['spike_match_fraction']:.2f}%; mean rate torch {res['conv']['torch_mean_rate_hz']:.2f} Hz, "
          f"Brian2 {res['conv']['brian2_mean_rate_hz']:.2f} Hz; both layers identical in "
          f"{100 * res['identical_trial_fraction_all_layers']:.1f}% of trials"] if res.get("conv") else []) + [
    ] + ([f"note: {res['note']}"] if res.get("note") else []) + [
        "written: " + ", ".join(str(Path(res["run_dir"]) / f) for f in res.get("files", {"verify": "verify.json"}).values()),
    ]
