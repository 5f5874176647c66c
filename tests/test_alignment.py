"""e-prop vs BPTT gradient alignment (cognet.experiments.alignment, `cognet align`)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from click.testing import CliRunner

from cognet.experiments.alignment import compare, gradient_alignment
from cognet.training import Trainer, build_config

SETS = ["network.n_rec=24", "train.iterations=6", "train.batch_size=8", "train.eval_every=100", "train.eval_trials=8"]


def test_compare_cosine_and_ratio():
    a = {"w_in": torch.tensor([1.0, 0.0]), "w_rec": torch.tensor([[2.0]]), "w_out": torch.tensor([0.0, 3.0])}
    b = {"w_in": torch.tensor([2.0, 0.0]), "w_rec": torch.tensor([[-1.0]]), "w_out": torch.tensor([3.0, 0.0])}
    r = compare(a, b)
    assert r["w_in"] == {"cosine": 1.0, "norm_ratio": 0.5}
    assert r["w_rec"]["cosine"] == -1.0 and r["w_out"]["cosine"] == 0.0
    assert math.isclose(r["all"]["cosine"], (2 - 2) / (math.sqrt(14) * math.sqrt(14)))


def test_alignment_measures_without_changing_the_trajectory():
    cfg = build_config(task="xor", sets=SETS)
    res = gradient_alignment(cfg, ["eprop-symmetric", "eprop-random"], every=3)
    its = sorted({r["iteration"] for r in res["rows"]})
    assert its == [0, 3, 6]
    for r in res["rows"]:
        assert -1.0 - 1e-12 <= r["cosine"] <= 1.0 + 1e-12
    sym = res["summary"]["eprop-symmetric"]
    assert abs(sym["w_out"]["mean_cosine"] - 1.0) < 1e-4  # e-prop's readout gradient is exact (float32)
    assert sym["w_rec"]["mean_cosine"] > res["summary"]["eprop-random"]["w_rec"]["mean_cosine"]
    # the trajectory is the plain training run's: same final weights as Trainer.run
    plain = Trainer(cfg, out_dir=None, progress=False)
    plain.run()
    measured = _final_net(cfg)
    for name in ("w_in", "w_rec", "w_out"):
        assert torch.equal(getattr(plain.net, name), getattr(measured, name)), name


def _final_net(cfg):
    import cognet.experiments.alignment as al

    captured = {}
    real = al.Trainer

    class Spy(real):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            captured["net"] = self.net

    al.Trainer = Spy
    try:
        al.gradient_alignment(cfg, ["eprop-symmetric"], every=2)
    finally:
        al.Trainer = real
    return captured["net"]


def test_cli_align_writes_json_and_figure_and_rejects_unknown_rules(tmp_path):
    from cognet.cli import main

    out = tmp_path / "al"
    args = ["align", "--task", "xor", "--every", "3", "--out", str(out)] + [a for s in SETS for a in ("--set", s)]
    res = CliRunner().invoke(main, args + ["--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert set(data["summary"]) == {"eprop-symmetric", "eprop-random"}
    assert json.loads((out / "alignment.json").read_text())["rows"] == data["rows"]
    assert (out / "alignment.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = CliRunner().invoke(main, args + ["--compare", "eprop-nope"])
    assert res.exit_code == 2 and "unknown rule 'eprop-nope'" in res.output


@pytest.mark.slow
def test_alignment_with_dropout_compares_rules_on_the_same_masks():
    cfg = build_config(task="xor", sets=SETS + ["network.dropout=0.3", "network.input_dropout=0.2"])
    res = gradient_alignment(cfg, ["eprop-symmetric"], every=3)
    # the readout gradient is exact only if BPTT and e-prop saw the same masks
    assert abs(res["summary"]["eprop-symmetric"]["w_out"]["mean_cosine"] - 1.0) < 1e-4
    plain = Trainer(cfg, out_dir=None, progress=False)
    plain.run()
    measured = _final_net(cfg)
    for name in ("w_in", "w_rec", "w_out"):
        assert torch.equal(getattr(plain.net, name), getattr(measured, name)), name
