"""Where does e-prop lose? The alignment of e-prop's gradient with BPTT's, over training.

Along one training trajectory (the run's own rule, BPTT by default), every ``every``
iterations the same batch is given to BPTT and to each e-prop rule, and their gradients
are compared parameter by parameter::

    cos(g_eprop, g_bptt) = <g_eprop, g_bptt> / (|g_eprop| |g_bptt|),   ratio = |g_eprop| / |g_bptt|

for ``w_in``, ``w_rec``, ``w_out`` and all of them concatenated ("all"). e-prop's readout
gradient is exact (cosine 1 for ``w_out`` with symmetric feedback); for ``w_in`` and ``w_rec``
the cosine measures what dropping the recurrent credit term (and, for random feedback,
replacing W_out^T by B) costs on this task at this point of training. Nothing here changes
the trajectory: the e-prop gradients are computed and discarded.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import math
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

import rules
from cognet.training.config import ConfigError, RunConfig
from cognet.training.io import atomic_write, write_json
from cognet.training.trainer import Trainer

PARAMS = ("w_in", "w_rec", "w_out")
ALIGNMENT_FILE = "alignment.json"


def _grads(net) -> Dict[str, torch.Tensor]:
    return {k: (getattr(net, k).grad.detach().clone() if getattr(net, k).grad is not None
                else torch.zeros_like(getattr(net, k))) for k in PARAMS}


def compare(g: Dict[str, torch.Tensor], ref: Dict[str, torch.Tensor]) -> Dict[str, Dict[str, float]]:
    """Cosine and norm ratio of gradient ``g`` against ``ref``, per parameter and for all together."""
    out = {}
    keys = list(PARAMS)
    g = {k: v.double() for k, v in g.items()}  # cosines in float64 whatever the training dtype
    ref = {k: v.double() for k, v in ref.items()}
    for name, a, b in [(k, g[k].flatten(), ref[k].flatten()) for k in keys] + [
            ("all", torch.cat([g[k].flatten() for k in keys]), torch.cat([ref[k].flatten() for k in keys]))]:
        na, nb = float(a.norm()), float(b.norm())
        cos = float(a @ b) / (na * nb) if na > 0 and nb > 0 else float("nan")
        out[name] = {"cosine": cos, "norm_ratio": na / nb if nb > 0 else float("nan")}
    return out


def gradient_alignment(cfg: RunConfig, compare_rules: Sequence[str] = ("eprop-symmetric", "eprop-random"),
                       every: int = 25, log: Optional[Callable[[str], None]] = None,
                       with_regulariser: bool = False) -> Dict[str, Any]:
    """Train ``cfg`` (its own rule, its own iterations) and measure the alignment every ``every``
    iterations (and at iteration 0). Returns ``{"config", "compared_sections", "every", "with_regulariser",
    "rows", "summary"}`` (see module doc; ``compared_sections``: the compared rules' own config
    sections, e.g. ``hop``, which the trajectory's ``config`` leaves out).

    By default the measured gradients are those of the task loss alone: the firing-rate
    regulariser's gradient is local, hence the same in e-prop and BPTT, and while rates are
    far from the target it dominates and hides the difference. ``with_regulariser`` compares
    the gradients of the full loss instead. The trajectory always trains on the full loss."""
    if every < 1:
        raise ConfigError(f"every must be >= 1, got {every}")
    for r in compare_rules:
        rules.get_rule_class(r)  # unknown names fail here, with the list
    trainer = Trainer(cfg, out_dir=None, progress=False)
    net, task, tc = trainer.net, trainer.task, trainer.cfg.train
    torch.set_num_threads(tc.threads)
    mcfg = copy.deepcopy(trainer.cfg)
    if not with_regulariser:
        mcfg.train.rate_reg = 0.0
    bptt = rules.get_rule_class("bptt").from_config(net, task, mcfg)
    others = {}
    for i, r in enumerate(compare_rules):
        g = torch.Generator().manual_seed(trainer.seeds["rule"] + 1 + i)
        others[r] = rules.get_rule_class(r).from_config(net, task, mcfg, g)
    rows: List[Dict[str, Any]] = []
    for it in range(tc.iterations + 1):
        batch = task.sample(tc.batch_size, trainer.g_train)
        batch = dataclasses.replace(batch, x=batch.x.to(trainer.device), target=batch.target.to(trainer.device),
                                    mask=batch.mask.to(trainer.device))
        if it % every == 0 or it == tc.iterations:
            # with network.dropout every rule sees the same masks, and measuring leaves the
            # trajectory's mask stream where it was
            g_state = net.dropout_generator.get_state()
            res = bptt.step(batch)
            ref = _grads(net)
            acc = task.score(res.logits, batch)[task.stop_metric]
            for r, rule in others.items():
                net.dropout_generator.set_state(g_state)
                rule.step(batch)
                for param, v in compare(_grads(net), ref).items():
                    rows.append({"iteration": it, "rule": r, "param": param, **v, "train_accuracy": acc})
            net.dropout_generator.set_state(g_state)
            if log:
                now = {(row["rule"], row["param"]): row["cosine"] for row in rows if row["iteration"] == it}
                msg = "; ".join(f"{r} w_in {now[(r, 'w_in')]:.3f} w_rec {now[(r, 'w_rec')]:.3f}" for r in others)
                log(f"iteration {it}: train {task.stop_metric} {acc:.3f}; cosine with BPTT: {msg}")
        if it == tc.iterations:
            break
        res = trainer.rule.step(batch)
        if not math.isfinite(res.loss):
            raise ConfigError(f"training diverged at iteration {it + 1} (loss {res.loss})")
        if tc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), tc.grad_clip)
        trainer.opt.step()
        trainer.sched.step()
        with torch.no_grad():
            net.constrain_()
    summary: Dict[str, Dict[str, Dict[str, float]]] = {}
    for r in others:
        for param in (*PARAMS, "all"):
            vals = [row["cosine"] for row in rows if row["rule"] == r and row["param"] == param
                    and math.isfinite(row["cosine"])]
            if vals:
                summary.setdefault(r, {})[param] = {"mean_cosine": sum(vals) / len(vals), "first": vals[0],
                                                    "last": vals[-1], "min": min(vals)}
    # the compared rules' own config sections (e.g. hop.hops): the trajectory's config holds only its rule's
    sections = {sec: dataclasses.asdict(getattr(trainer.cfg, sec)) for r in compare_rules
                for sec in rules.get_rule_class(r).config_sections}
    return {"config": trainer.cfg.to_dict(), "compared_sections": sections, "every": every,
            "with_regulariser": with_regulariser, "rows": rows, "summary": summary}


def write_alignment(result: Dict[str, Any], out_dir: Path) -> Dict[str, str]:
    """``alignment.json`` and ``alignment.png`` (cosine over iterations, one panel per weight)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / ALIGNMENT_FILE, result)
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    panels = (*PARAMS, "all")
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.4), sharey=True)
    for ax, param in zip(axes, panels):
        for r in sorted({row["rule"] for row in result["rows"]}):
            pts = [(row["iteration"], row["cosine"]) for row in result["rows"] if row["rule"] == r and row["param"] == param]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=r)
        ax.axhline(1.0, color="grey", lw=0.8, ls=":")
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_title(f"{param}")
        ax.set_xlabel("iteration (BPTT trajectory)")
    axes[0].set_ylabel("cosine with the BPTT gradient")
    axes[0].legend(fontsize=8)
    task = result["config"]["task"]["name"]
    fig.suptitle(f"{task}: e-prop vs BPTT gradient alignment (same batch)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write(out_dir / "alignment.png", buf.getvalue())
    return {"json": str(out_dir / ALIGNMENT_FILE), "figure": str(out_dir / "alignment.png")}
