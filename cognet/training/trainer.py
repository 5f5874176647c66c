"""The training loop and the run directory.

A run directory holds::

    config.yaml          the resolved configuration (every default written out)
    model.safetensors    trained weights + neuron parameters (see cognet.training.model)
    checkpoint.safetensors  resumable state: weights, optimiser, RNG states, iteration
    metrics.jsonl        one JSON line per iteration (and per evaluation)
    summary.json         the final held-out scores, rates and timings

All files are written atomically. A killed run started again with the same ``--out``
resumes from its last checkpoint; a completed run is not retrained. One process at a time
writes a run directory (:func:`cognet.training.io.run_lock`), and nothing in it is touched
before the configuration and an existing checkpoint have been checked against each other.

Nothing silently wrong: the loss, the global gradient norm (whether or not ``train.grad_clip``
is on) and the parameters after every update must be finite, else the run stops with
:class:`TrainingDiverged` before anything of that iteration is written (the last good
checkpoint stays). Values read back from a checkpoint are validated: checksums, finite
weights, learning rates equal to the config's (``base_lrs == [train.lr]``, current rate
``lr * lambda(iteration)``), ``0 <= iteration <= train.iterations``. An early stop is
recorded in the checkpoint, so a run killed after it resumes to the same end.

Randomness: from the run seed, :class:`numpy.random.SeedSequence` derives independent
streams for the initial weights and neuron parameters, the training batches, the held-out
validation trials (early stopping), the learning rule, the test trials that
``summary.json`` reports, and the dropout masks (``network.dropout``; its generator state is
checkpointed with the batch generator's, so a resumed run draws the same masks). Validation and test trials come from their own streams, never
seen in training, and the test trials are never used for any decision.

Model selection: by default the run ends with its last weights. With ``train.keep_best``
it ends with the weights of the evaluation that scored best on the validation trials (the
task's stop metric, ties broken by bit accuracy, the earlier evaluation winning a full tie);
``summary.json`` then names that ``best_iteration``. The best weights are part of the
checkpoint, so a resumed run selects from its whole history. The test trials still only
score the selected model.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch
import yaml

import rules
import tasks

from cognet.training.config import ConfigError, RunConfig, conv_geometry
from cognet.training.io import (CorruptFileError, append_jsonl, atomic_write, check_finite, load_tensors,
                                read_json_object, read_jsonl, rewrite_jsonl, run_lock, save_tensors, write_json)
from cognet.training.guards import MAX_N_REC, check_checkpoint_values, check_memory, divergence_advice
from cognet.training.plugins import write_run_plugins
from cognet.training.prefetch import BatchPrefetcher
from cognet.training.model import DTYPES, build_network, check_task_matches, load_model, neuron_params, save_model, stat_buffers

CHECKPOINT_FORMAT = "cognet-checkpoint-1"


class TrainingDiverged(RuntimeError):
    """The loss, a gradient or an update became NaN or infinite."""


def config_yaml(cfg: RunConfig) -> str:
    """The text of ``config.yaml``: the resolved config; where ``surrogate.width`` is 0 (the
    shape's default) a comment gives the width used. (The value itself stays 0 so that the run
    hash, computed from the resolved config, is that of every run with the default.)"""
    from cognet.training.model import make_surrogate

    text = yaml.safe_dump(cfg.resolved_dict(), sort_keys=False)
    if cfg.surrogate.width == 0:
        used = make_surrogate(cfg.surrogate).width
        lines = text.splitlines()
        in_surrogate = False
        for i, line in enumerate(lines):
            if not line.startswith(" "):
                in_surrogate = line.startswith("surrogate:")
            elif in_surrogate and line.strip().startswith("width:"):
                lines[i] = f"{line}  # 0 = the {cfg.surrogate.name} default: width {used:g} used"
        text = "\n".join(lines) + "\n"
    return text


def derive_seeds(seed: int) -> Dict[str, int]:
    # SeedSequence.spawn: child i depends only on i, so appending a stream keeps the others
    names = ["init", "train", "eval", "rule", "test", "dropout"]
    children = np.random.SeedSequence(seed).spawn(len(names))
    return {n: int(c.generate_state(1, dtype=np.uint64)[0] % (2**63 - 1)) for n, c in zip(names, children)}


#: keys that change how fast a run goes, not what it computes: left out of the config hash,
#: so that e.g. ``train.engine`` never moves a run to another directory
SPEED_ONLY_KEYS = (("train", "engine"),)


def _without_speed_keys(d: Any) -> Any:
    """A resolved config dict without :data:`SPEED_ONLY_KEYS` (for comparing run identities)."""
    if not isinstance(d, dict):
        return d
    d = copy.deepcopy(d)
    for section, key in SPEED_ONLY_KEYS:
        if isinstance(d.get(section), dict):
            d[section].pop(key, None)
    return d


def config_hash(cfg: RunConfig) -> str:
    """Identity of a run: its resolved config without :data:`SPEED_ONLY_KEYS`. (The fused and
    reference engines give the same spikes in float64; in float32 a neuron exactly at threshold
    may round the other way, see :mod:`cognet.core.fused`.)"""
    import hashlib

    d = cfg.resolved_dict()
    if d["train"].get("device") == "auto":  # the same computation as the device it resolves to
        d["train"]["device"] = pick_device("auto").type
    for section, key in SPEED_ONLY_KEYS:
        d.get(section, {}).pop(key, None)
    blob = json.dumps(d, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def default_run_dir(cfg: RunConfig, root: str = "runs") -> Path:
    return Path(root) / f"{cfg.task}-{cfg.rule}-seed{cfg.seed}-{config_hash(cfg)}"


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda but no CUDA device is available; use cpu or auto")
    return torch.device(name)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def proportion_ci95(successes: int, trials: int) -> Tuple[float, float]:
    """Wilson score 95 % interval of a success fraction (e.g. sequence accuracy on held-out
    trials): at 256 trials an accuracy of 0.90 is known to about +-0.04, which matters when a
    result sits near a threshold."""
    from scipy.stats import binomtest

    ci = binomtest(int(successes), int(trials)).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


@torch.no_grad()
def evaluate(net, task, trials: int, seed: int, batch_size: int = 256, keep_spikes: bool = False,
             split: str = "test") -> Dict[str, Any]:
    """Held-out scores and firing statistics on ``trials`` fresh trials drawn from ``seed``
    (from the task's held-out ``split``: ``eval`` during training, ``test`` otherwise). A task
    with a finite held-out set (``task.held_out_batch``, digits) is scored in batches of at
    least that size, so that each held-out image is drawn once per pass."""
    batch_size = max(batch_size, int(getattr(task, "held_out_batch", 0)))
    g = torch.Generator().manual_seed(int(seed))
    conv_sum = 0.0
    conv_count = 0
    device = net.w_rec.device
    right_bits = total_bits = right_seq = 0.0
    spike_sum = None
    silent_count = None
    steps = 0
    zs = []
    batches = []
    done = 0
    while done < trials:
        b = min(batch_size, trials - done)
        batch = task.sample(b, g, split=split)
        batch_dev = dataclasses.replace(batch, x=batch.x.to(device), target=batch.target.to(device),
                                        mask=batch.mask.to(device))
        out = net(batch_dev.x, batch_dev.windows)
        s = task.score(out.logits, batch_dev)
        n_answers = float(batch.mask.sum()) * (batch.target.shape[-1] if task.output == "bits" else 1)
        right_bits += s["bit_accuracy"] * n_answers
        total_bits += n_answers
        right_seq += s["sequence_accuracy"] * b
        counts = out.z.sum(dim=(0, 1))
        spike_sum = counts if spike_sum is None else spike_sum + counts
        if out.conv_z is not None:
            conv_sum += float(out.conv_z.sum())
            conv_count += out.conv_z.numel()
        steps += out.z.shape[0] * b
        if keep_spikes:
            zs.append(out.z.cpu())
            batches.append(batch)
        done += b
    dt = net.neurons.dt_ms
    rates = spike_sum / steps * (1000.0 / dt)
    result: Dict[str, Any] = {
        "trials": trials,
        "bit_accuracy": right_bits / max(total_bits, 1.0),
        "sequence_accuracy": right_seq / trials,
        "sequence_accuracy_ci95": list(proportion_ci95(round(right_seq), trials)),
        "mean_rate_hz": float(rates.mean()),
        "silent_fraction": float((spike_sum == 0).float().mean()),
        "rates_hz": rates.cpu().tolist(),
    }
    if conv_count:  # the conv front end's mean rate (its neurons are not in rates_hz)
        result["conv_mean_rate_hz"] = conv_sum / conv_count * (1000.0 / dt)
    if keep_spikes:
        result["spikes"] = zs
        result["batches"] = batches
    return result


class Trainer:
    """Trains one configuration into one run directory (resumable)."""

    def __init__(self, cfg: RunConfig, out_dir: Optional[Path] = None, progress: Optional[bool] = None) -> None:
        self.cfg = copy.deepcopy(cfg).validate()
        self.out = Path(out_dir) if out_dir is not None else None
        self.progress = True if progress is None else progress
        tc = cfg.train
        self.device = pick_device(tc.device)
        self.dtype = DTYPES[tc.dtype]
        self.seeds = derive_seeds(cfg.seed)
        self.task = tasks.get_task(cfg.task, cfg.task_params, cfg.network.dt_ms)
        if cfg.network.n_rec > MAX_N_REC:
            raise ConfigError(f"network.n_rec must be <= {MAX_N_REC}, got {cfg.network.n_rec}")
        check_memory(cfg, self.task)
        g_init = torch.Generator().manual_seed(self.seeds["init"])
        neurons = neuron_params(cfg.network, np.random.default_rng(self.seeds["init"]))
        self.net = build_network(self.task.n_in, self.task.n_out, neurons, cfg.network, cfg.surrogate,
                                 generator=g_init, dtype=self.dtype, engine=tc.engine,
                                 bntt_steps=self.task.T,
                                 conv=conv_geometry(cfg.network, self.task)).to(self.device)
        self.g_train = torch.Generator().manual_seed(self.seeds["train"])
        self.net.dropout_generator = torch.Generator().manual_seed(self.seeds["dropout"])
        g_rule = torch.Generator().manual_seed(self.seeds["rule"])
        self.rule = rules.get_rule_class(cfg.rule).from_config(self.net, self.task, cfg, g_rule)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=tc.lr)
        total, floor = tc.iterations, tc.lr_min_factor
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda it: floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(it, total) / total)))
        self.iteration = 0
        self.wall_before = 0.0  # training seconds spent before a resume
        self.best = -1.0
        self.stopped_early = False
        self.stop_score: Optional[float] = None  # the validation score that stopped the run early
        # train.keep_best: the weights, score key and iteration of the best validation score
        self.best_state: Optional[Dict[str, torch.Tensor]] = None
        self.best_key: Tuple[float, float] = (-1.0, -1.0)
        self.best_iteration = 0
        self.tb = None  # train.tensorboard: a cognet.training.tensorboard.TensorBoardLog fed by _log
        self.prefetch: Optional[BatchPrefetcher] = None  # the training batches, drawn one ahead while _run runs

    # -- checkpoints -------------------------------------------------------------------------
    def _checkpoint_path(self) -> Optional[Path]:
        return self.out / "checkpoint.safetensors" if self.out else None

    def save_checkpoint(self, wall: float) -> None:
        path = self._checkpoint_path()
        if path is None:
            return
        tensors: Dict[str, torch.Tensor] = {f"model.{k}": v for k, v in self.net.named_parameters()}
        tensors.update({f"buffer.{k}": v for k, v in stat_buffers(self.net).items()})
        opt_state = self.opt.state_dict()
        scalars: Dict[str, Any] = {}
        for idx, st in opt_state["state"].items():
            for key, val in st.items():
                if torch.is_tensor(val):
                    tensors[f"optim.{idx}.{key}"] = val
                else:
                    scalars[f"{idx}.{key}"] = val
        # drawing ahead (BatchPrefetcher) leaves the state as if no batch had been drawn ahead
        tensors["rng.train"] = self.prefetch.state() if self.prefetch is not None else self.g_train.get_state()
        if self.net.uses_dropout:
            tensors["rng.dropout"] = self.net.dropout_generator.get_state()
        for k, v in self.rule.state_tensors().items():
            tensors[f"rule.{k}"] = v
        if self.best_state is not None:
            for k, v in self.best_state.items():
                tensors[f"best.{k}"] = v
        meta = {
            "format": CHECKPOINT_FORMAT, "iteration": str(self.iteration), "wall_s": repr(wall),
            "best": repr(self.best), "config_hash": config_hash(self.cfg),
            "param_groups": json.dumps(opt_state["param_groups"]), "optim_scalars": json.dumps(scalars),
            "sched": json.dumps(self.sched.state_dict()),
            "stopped_early": "1" if self.stopped_early else "0",
            # the engine this run's steps ran on: a resumed `auto` run goes on with it (bit-identical resume)
            "engine": self.engine_used(),
        }
        if self.stop_score is not None:
            meta["stop_score"] = repr(self.stop_score)
        if self.best_state is not None:
            meta["best_key"] = json.dumps(list(self.best_key))
            meta["best_iteration"] = str(self.best_iteration)
        save_tensors(path, tensors, meta)

    def engine_used(self) -> str:
        """``fused`` or ``reference``: the engine the network's forward pass runs on."""
        from cognet.core.fused import resolve_engine

        if self.net.needs_reference_path:  # dropout, BNTT
            return "reference"
        return resolve_engine(self.net.engine, torch.device(self.device), self.dtype, self.net.surrogate)

    def load_checkpoint(self) -> bool:
        path = self._checkpoint_path()
        if path is None or not path.exists():
            return False
        tensors, meta = load_tensors(path)
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise CorruptFileError(f"{path} is not a cognet checkpoint")
        if meta.get("config_hash") != config_hash(self.cfg):
            raise ConfigError(f"{path} belongs to a different configuration; use another --out or --restart")
        check_finite(path, {k: v for k, v in tensors.items() if not k.startswith("rng.")})
        check_checkpoint_values(self.cfg, self.opt, path, meta)
        try:
            with torch.no_grad():
                for k, p in self.net.named_parameters():
                    p.copy_(tensors[f"model.{k}"])
                for k, b in stat_buffers(self.net).items():
                    b.copy_(tensors[f"buffer.{k}"])
            param_groups = json.loads(meta["param_groups"])
            scalars = json.loads(meta["optim_scalars"])
            state: Dict[int, Dict[str, Any]] = {}
            for key, val in tensors.items():
                if key.startswith("optim."):
                    _, idx, name = key.split(".", 2)
                    state.setdefault(int(idx), {})[name] = val.to(self.device)
            for key, val in scalars.items():
                idx, name = key.split(".", 1)
                state.setdefault(int(idx), {})[name] = val
            self.opt.load_state_dict({"state": state, "param_groups": param_groups})
            self.sched.load_state_dict(json.loads(meta["sched"]))
            self.g_train.set_state(tensors["rng.train"])
            if self.net.uses_dropout:
                self.net.dropout_generator.set_state(tensors["rng.dropout"])
            self.rule.load_state_tensors({k[5:]: v for k, v in tensors.items() if k.startswith("rule.")})
            self.iteration = int(meta["iteration"])
            self.wall_before = float(meta["wall_s"])
            if self.cfg.train.engine == "auto":
                # checkpoints from before the fused engine existed ran on the reference engine
                recorded = meta.get("engine", "reference")
                if recorded not in ("fused", "reference"):
                    raise ValueError(f"unknown engine {recorded!r} in the checkpoint")
                self.net.engine = recorded if recorded == "reference" else "auto"
            self.best = float(meta["best"])
            if self.cfg.train.keep_best and "best_key" in meta:
                self.best_state = {k: tensors[f"best.{k}"].to(self.device) for k in self._state()}
                key = json.loads(meta["best_key"])
                self.best_key = (float(key[0]), float(key[1]))
                self.best_iteration = int(meta["best_iteration"])
            self.stopped_early = meta.get("stopped_early", "0") == "1"
            self.stop_score = float(meta["stop_score"]) if "stop_score" in meta else None
        except (KeyError, ValueError, RuntimeError, TypeError, IndexError) as exc:
            raise CorruptFileError(f"{path} is incomplete or inconsistent ({exc}); delete it or pass --restart") from None
        return True

    # -- model selection (train.keep_best) -----------------------------------------------------
    def _remember_if_best(self, ev: Dict[str, Any], metric: str) -> None:
        key = (float(ev[metric]), float(ev["bit_accuracy"]))
        if key > self.best_key:
            self.best_key = key
            self.best_iteration = self.iteration
            self.best_state = {k: p.detach().clone() for k, p in self._state().items()}

    def _state(self) -> Dict[str, torch.Tensor]:
        """The learnt tensors: parameters and statistics (BNTT running statistics)."""
        return {**dict(self.net.named_parameters()), **stat_buffers(self.net)}

    def _load_params(self, state: Dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for k, p in self._state().items():
                p.copy_(state[k])

    # -- the loop ------------------------------------------------------------------------------
    def _log(self, record: Dict[str, Any]) -> None:
        if self.out:
            append_jsonl(self.out / "metrics.jsonl", record)
        if self.tb is not None:
            self.tb.log(record)

    def evaluate(self, trials: Optional[int] = None, stream: str = "eval") -> Dict[str, Any]:
        self.net.eval()
        return evaluate(self.net, self.task, trials or self.cfg.train.eval_trials, self.seeds[stream], split=stream)

    def run(self) -> Dict[str, Any]:
        if not self.out:
            return self._run()
        with run_lock(self.out):
            return self._run()

    def _prepare_dir(self) -> Optional[Dict[str, Any]]:
        """Check the run directory against this config (nothing written), then write the config
        and resume. Returns the summary of an already complete run, else None."""
        cfg = self.cfg
        assert self.out is not None
        summary_path = self.out / "summary.json"
        config_path = self.out / "config.yaml"
        resolved = cfg.resolved_dict()
        if config_path.exists():
            try:
                old = yaml.safe_load(config_path.read_text())
            except (yaml.YAMLError, RecursionError, UnicodeDecodeError) as exc:
                raise CorruptFileError(f"{config_path} is not valid YAML ({exc}); restore it or pass --restart") from None
            if _without_speed_keys(old) != _without_speed_keys(resolved):
                raise ConfigError(f"{self.out} already holds a run with a different configuration; "
                                  "choose another --out (nothing was overwritten)")
        if summary_path.exists() and (self.out / "model.safetensors").exists():
            summary = read_json_object(summary_path)
            summary["resumed"] = "already complete"
            return summary
        resumed = self.load_checkpoint()  # refuses a checkpoint of another config before anything is written
        atomic_write(config_path, config_yaml(cfg))
        write_run_plugins(self.out, cfg.task, cfg.rule)
        if resumed:
            # drop metric lines written after the checkpoint (they will be recomputed)
            rows = [r for r in read_jsonl(self.out / "metrics.jsonl") if r.get("iteration", 0) <= self.iteration]
            rewrite_jsonl(self.out / "metrics.jsonl", rows)
        elif (self.out / "metrics.jsonl").exists():
            rewrite_jsonl(self.out / "metrics.jsonl", [])
        return None

    def _check_update(self, res, T: int) -> Optional[float]:
        """Global gradient norm (clipped if train.grad_clip > 0); TrainingDiverged if the loss or
        a gradient is not finite."""
        cfg, tc = self.cfg, self.cfg.train
        it = self.iteration + 1
        if not math.isfinite(res.loss):
            raise TrainingDiverged(
                f"loss became {res.loss} at iteration {it} (task loss {res.task_loss}, rate penalty {res.reg_loss}); "
                f"{divergence_advice(cfg, T)}")
        params = [p for p in self.net.parameters() if p.grad is not None]
        if tc.grad_clip > 0:
            gnorm = float(torch.nn.utils.clip_grad_norm_(params, tc.grad_clip))
        else:
            gnorm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad.double())
                                                                for p in params]))) if params else 0.0
        if not math.isfinite(gnorm):
            raise TrainingDiverged(f"gradient norm became {gnorm} at iteration {it}; {divergence_advice(cfg, T)}")
        return gnorm if tc.grad_clip > 0 else None

    def _run(self) -> Dict[str, Any]:
        cfg, tc = self.cfg, self.cfg.train
        torch.set_num_threads(tc.threads)
        if self.out:
            done = self._prepare_dir()
            if done is not None:
                return done
            if tc.tensorboard:
                from cognet.training.tensorboard import TensorBoardLog

                self.tb = TensorBoardLog(self.out / "tensorboard", purge_step=self.iteration + 1)
        resumed_from = self.iteration
        t0 = time.perf_counter()
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=tc.iterations, initial=self.iteration, desc=f"{cfg.task}/{cfg.rule}", unit="it",
                       dynamic_ncols=True, leave=False, file=sys.stderr)
        metric = self.task.stop_metric
        self.prefetch = BatchPrefetcher(lambda: self.task.sample(tc.batch_size, self.g_train), self.g_train)
        try:
            while self.iteration < tc.iterations and not self.stopped_early:
                self.net.train()
                batch = self.prefetch.next()
                batch = dataclasses.replace(batch, x=batch.x.to(self.device), target=batch.target.to(self.device),
                                            mask=batch.mask.to(self.device))
                if tc.rate_target_start_hz > 0:  # train.rate_target_start_hz: the rule sees this step's target
                    self.rule.cfg = dataclasses.replace(tc, rate_target_hz=tc.rate_target_at(self.iteration))
                res = self.rule.step(batch)
                gnorm = self._check_update(res, batch.x.shape[0])
                self.opt.step()
                self.sched.step()
                with torch.no_grad():
                    self.net.constrain_()
                    bad = [k for k, p in self.net.named_parameters() if not bool(torch.isfinite(p).all())]
                if bad:
                    raise TrainingDiverged(f"the update at iteration {self.iteration + 1} made {', '.join(bad)} "
                                           f"non-finite; {divergence_advice(cfg, batch.x.shape[0])}")
                self.iteration += 1
                score = self.task.score(res.logits, batch)
                rate = float(res.z.mean()) * 1000.0 / cfg.network.dt_ms
                rec = {"iteration": self.iteration, "loss": res.loss, "task_loss": res.task_loss,
                       "reg_loss": res.reg_loss, **score, "mean_rate_hz": rate, "lr": self.sched.get_last_lr()[0]}
                if gnorm is not None:
                    rec["grad_norm"] = gnorm
                if tc.rate_target_start_hz > 0:
                    rec["rate_target_hz"] = self.rule.cfg.rate_target_hz
                self._log(rec)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{res.loss:.3f}", acc=f"{score[metric]:.2f}", rate=f"{rate:.1f}Hz")
                if self.iteration % tc.eval_every == 0 or self.iteration == tc.iterations:
                    ev = self.evaluate()
                    # while the rate target is still annealing, the weights are not candidates: a
                    # score reached at a higher rate neither stops the run nor is kept
                    annealing = self.iteration < tc.anneal_iterations()
                    if not annealing:
                        self.best = max(self.best, ev[metric])
                        if tc.keep_best:
                            self._remember_if_best(ev, metric)
                    self._log({"iteration": self.iteration, "eval": True,
                               **{k: v for k, v in ev.items() if k != "rates_hz"}})
                    if bar is not None:
                        bar.write(f"iter {self.iteration}: validation {metric} {ev[metric]:.3f}, "
                                  f"rate {ev['mean_rate_hz']:.1f} Hz", file=sys.stderr)
                    if ev[metric] >= tc.target_accuracy and not annealing:
                        self.stopped_early = self.iteration < tc.iterations
                        self.stop_score = float(ev[metric])
                        break
                if tc.checkpoint_every and self.iteration % tc.checkpoint_every == 0:
                    self.save_checkpoint(self.wall_before + time.perf_counter() - t0)
        finally:
            self.prefetch.close()  # g_train back to the state after the last batch trained on
            self.prefetch = None
            if bar is not None:
                bar.close()
            if self.tb is not None:
                self.tb.flush()
        train_wall = self.wall_before + time.perf_counter() - t0
        last_state = None
        if tc.keep_best and self.best_state is not None:
            # the checkpoint keeps the last weights (a resumed run must go on from them);
            # the model and the test score are those of the selected weights
            last_state = {k: p.detach().clone() for k, p in self._state().items()}
            self._load_params(self.best_state)
        final = self.evaluate(stream="test")
        summary = {
            "task": cfg.task, "rule": cfg.rule, "seed": cfg.seed,
            "bit_accuracy": final["bit_accuracy"], "sequence_accuracy": final["sequence_accuracy"],
            "sequence_accuracy_ci95": final["sequence_accuracy_ci95"],
            "mean_rate_hz": final["mean_rate_hz"], "silent_fraction": final["silent_fraction"],
            "iterations": self.iteration, "wall_s": train_wall, "eval_trials": final["trials"],
            "stopped_early": self.stopped_early, "stop_metric": metric, "target_accuracy": tc.target_accuracy,
            "stop_score": self.stop_score, "validation_best": self.best, "chance": self.task.chance(), "n_rec": self.net.n,
            "n_in": self.net.n_in, "resumed_from_iteration": resumed_from or None,
            "peak_rss_mb": peak_rss_mb(),
        }
        if self.net.rec_sign is not None:  # Dale's law: the excitatory and inhibitory neurons' mean rates
            rates = torch.as_tensor(final["rates_hz"], dtype=torch.float64)
            sign = self.net.rec_sign.reshape(-1).cpu()
            summary["exc_mean_rate_hz"] = float(rates[sign > 0].mean())
            summary["inh_mean_rate_hz"] = float(rates[sign < 0].mean())
        if "conv_mean_rate_hz" in final:
            summary["conv_mean_rate_hz"] = final["conv_mean_rate_hz"]
            summary["n_conv"] = self.net.conv.geom.n_conv
        if tc.keep_best:
            summary["best_iteration"] = self.best_iteration if self.best_state is not None else self.iteration
        if self.out:
            save_model(self.out / "model.safetensors", self.net, cfg, extra={"seeds": self.seeds})
        if last_state is not None:
            self._load_params(last_state)
        if self.out:
            self.save_checkpoint(train_wall)
            write_json(self.out / "summary.json", {**summary, "rates_hz": final["rates_hz"]})
        if self.tb is not None:
            self.tb.finish(cfg.resolved_dict(), summary)
        return summary


def seconds_per_iteration(cfg: RunConfig, timed: int = 2) -> float:
    """Measured wall time of one training iteration of ``cfg`` (after one warm-up iteration),
    in a throw-away trainer that writes nothing: the basis of run-time estimates."""
    t = Trainer(cfg, None, progress=False)
    torch.set_num_threads(cfg.train.threads)
    t.net.train()
    times = []
    for i in range(1 + timed):
        t0 = time.perf_counter()
        batch = t.task.sample(cfg.train.batch_size, t.g_train)
        batch = dataclasses.replace(batch, x=batch.x.to(t.device), target=batch.target.to(t.device),
                                    mask=batch.mask.to(t.device))
        t.rule.step(batch)
        t.opt.step()
        t.sched.step()
        if i:
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def train(cfg: RunConfig, out_dir: Optional[Path] = None, progress: Optional[bool] = None,
          restart: bool = False) -> Dict[str, Any]:
    trainer = Trainer(cfg, out_dir, progress)  # validates (sizes, memory) before anything is touched
    if out_dir is None:
        return trainer.run()
    with run_lock(out_dir):
        if restart:
            for name in ("checkpoint.safetensors", "summary.json", "model.safetensors", "metrics.jsonl", "config.yaml"):
                p = Path(out_dir) / name
                if p.exists():
                    p.unlink()
        return trainer.run()


def eval_run(run_dir: Path, trials: Optional[int] = None, seed: Optional[int] = None) -> Dict[str, Any]:
    """Re-evaluate a trained run on fresh held-out trials (default: the run's own held-out seed;
    ``trials`` default: the task's :meth:`~tasks.base.Task.held_out_trials`, 256 for the symbolic tasks)."""
    run_dir = Path(run_dir)
    model_path = run_dir / "model.safetensors"
    if not model_path.exists():
        raise FileNotFoundError(f"{run_dir} holds no trained model (model.safetensors missing)")
    net, cfg = load_model(model_path)
    net.eval()
    task = tasks.get_task(cfg.task, cfg.task_params, cfg.network.dt_ms)
    check_task_matches(net, task, model_path)
    eval_seed = derive_seeds(cfg.seed)["test"] if seed is None else int(seed)
    trials = task.held_out_trials() if trials is None else int(trials)
    res = evaluate(net, task, trials, eval_seed)
    return {"task": cfg.task, "rule": cfg.rule, "seed": cfg.seed, "eval_seed": eval_seed, "trials": trials, **res}
