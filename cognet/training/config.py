"""Run configuration: nested dataclasses, YAML files and ``--set key=value`` overrides.

A run is described by :class:`RunConfig` with sections ``network``, ``surrogate``,
``train``, ``eprop``, ``hop``, ``mdgl`` and ``task`` (the task section holds ``name`` plus that task's own parameters,
validated by the task). Keys are addressed with dots: ``network.n_rec=200``,
``task.n_bits=6``, ``train.lr=0.005``. Unknown keys and invalid values raise
:class:`ConfigError` naming the key and the allowed values.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import yaml

from cognet.core.errors import ConfigError
from cognet.training.plugins import ensure_loaded
from rules.eprop import EpropConfig
from rules.hops import HopConfig
from rules.mdgl import MdglConfig
from tasks.base import coerce




@dataclass
class NetworkConfig:
    n_rec: int = 100  # recurrent neurons
    alif_fraction: float = 0.5  # fraction of ALIF neurons (the last ones)
    dt_ms: float = 1.0
    tau_mem_ms: float = 20.0  # membrane time constant (tau_mem_max_ms > 0 draws one per neuron)
    tau_mem_max_ms: float = 0.0  # if > tau_mem_ms: per-neuron tau_mem ~ U(tau_mem_ms, max) (Perez-Nieves et al. 2021)
    v_th: float = 1.0
    reset: str = "subtract"  # subtract | zero
    refractory_ms: float = 2.0
    tau_adapt_ms: float = 200.0  # ALIF adaptation time constant (tau_adapt_max_ms > 0 draws per neuron)
    tau_adapt_max_ms: float = 0.0  # if > tau_adapt_ms: per-neuron tau_adapt ~ U(tau_adapt_ms, max)
    beta: float = 0.1  # ALIF threshold adaptation strength (e-prop convention)
    tau_out_ms: float = 20.0  # readout filter time constant
    detach_reset: bool = True  # stop the gradient through the reset (arXiv 2011.09964 keeps it)
    self_connections: bool = False
    input_scale: float = 3.0  # W_in ~ N(0, (input_scale v_th)^2 / n_in)
    rec_scale: float = 0.5  # W_rec ~ N(0, (rec_scale v_th)^2 / n_rec)
    dropout: float = 0.0  # per-trial dropout of the recurrent spikes (mask held over time, x 1/(1-p)); 0 = off
    input_dropout: float = 0.0  # the same on the input spikes; 0 = off
    bntt: bool = False  # batch normalisation through time of W_in x[t] (Kim & Panda 2021; BPTT only)
    bntt_gamma: float = 0.3  # initial BNTT scale gamma_t in units of v_th (1 = Kim & Panda; too strong here)
    conv_channels: int = 0  # spiking conv front end on image tasks (digits): number of kernels; 0 = off
    conv_kernel: int = 3  # kernel size k (k x k taps)
    conv_padding: int = 1  # zero padding of the image
    conv_pool: int = 2  # sum-pooling of q x q blocks of conv spikes into W_in
    conv_scale: float = 1.0  # kernels ~ N(0, (conv_scale v_th)^2 / (C_in k^2))
    dale: bool = False  # Dale's law: each neuron's outgoing recurrent weights keep one sign (cognet.core.network)
    exc_fraction: float = 0.8  # with dale: fraction of excitatory neurons, in the LIF and the ALIF neurons alike

    def validate(self) -> None:
        for k in ("dropout", "input_dropout"):
            v = getattr(self, k)
            if not (isinstance(v, (int, float)) and 0.0 <= v < 1.0):
                raise ConfigError(f"network.{k} must be in [0, 1), got {v!r}")
        _positive(self, "network", ["n_rec", "dt_ms", "tau_mem_ms", "v_th", "tau_adapt_ms", "tau_out_ms",
                                    "bntt_gamma"])
        _nonneg(self, "network", ["refractory_ms", "beta", "input_scale", "rec_scale", "tau_adapt_max_ms", "tau_mem_max_ms",
                                  "conv_channels", "conv_padding"])
        if self.conv_channels:
            _positive(self, "network", ["conv_kernel", "conv_pool", "conv_scale"])
        _choice(self, "network", "reset", ["subtract", "zero"])
        if not 0 <= self.alif_fraction <= 1:
            raise ConfigError(f"network.alif_fraction must be in [0, 1], got {self.alif_fraction}")
        if 0 < self.tau_mem_max_ms <= self.tau_mem_ms:
            raise ConfigError(f"network.tau_mem_max_ms must be 0 (one membrane time constant) or above "
                              f"network.tau_mem_ms={self.tau_mem_ms}, got {self.tau_mem_max_ms}")
        if not isinstance(self.dale, bool):
            raise ConfigError(f"network.dale must be true or false, got {self.dale!r}")
        if self.dale and not (isinstance(self.exc_fraction, (int, float)) and 0 < self.exc_fraction < 1):
            raise ConfigError(f"network.exc_fraction must be in (0, 1) (both excitatory and inhibitory neurons), "
                              f"got {self.exc_fraction!r}")


@dataclass
class SurrogateConfig:
    name: str = "triangle"  # see cognet.core.surrogate.SHAPES
    width: float = 0.0  # 0 = the shape's default width
    peak: float = 0.3
    leak_aware: bool = False  # Lee et al. 2020 leak-aware correction of the derivative

    def validate(self) -> None:
        from cognet.core.surrogate import SHAPES

        _choice(self, "surrogate", "name", sorted(SHAPES))
        _nonneg(self, "surrogate", ["width"])
        _positive(self, "surrogate", ["peak"])


@dataclass
class TrainConfig:
    iterations: int = 2000  # maximum training iterations
    batch_size: int = 64
    lr: float = 0.01  # Adam learning rate
    lr_min_factor: float = 0.05  # cosine decay of the learning rate down to lr * lr_min_factor
    grad_clip: float = 1.0  # max global gradient norm (0 = off)
    rate_target_hz: float = 10.0  # firing-rate regulariser target
    rate_reg: float = 1.0  # regulariser coefficient c: c * mean_j ((r_j - f0) / f0)^2 ... see rules.base
    rate_reg_form: str = "neuron"  # neuron: every neuron to f0 | population: the mean rate to f0 | above: rates above f0 only
    rate_target_start_hz: float = 0.0  # > 0: the target starts here and moves geometrically to rate_target_hz ...
    rate_anneal_fraction: float = 0.5  # ... over this fraction of the iterations (no early stop or keep_best before)
    eval_every: int = 100  # iterations between held-out evaluations
    eval_trials: int = 256  # held-out trials per evaluation
    target_accuracy: float = 0.98  # early stop when the task's stop metric reaches this on held-out data
    keep_best: bool = False  # end with the weights that scored best on the validation trials (not the last ones)
    threads: int = 1  # torch intra-op threads (1 is fastest and stable for these small networks)
    dtype: str = "float32"  # float32 | float64
    device: str = "cpu"  # cpu | cuda | auto
    checkpoint_every: int = 100  # iterations between resumable checkpoints (0 = only at the end)
    tensorboard: bool = False  # also write TensorBoard events to RUN/tensorboard (cognet.training.tensorboard)
    engine: str = "auto"  # auto | fused | reference: simulation engine (speed only; not in the config hash)

    def validate(self) -> None:
        _positive(self, "train", ["iterations", "batch_size", "lr", "eval_every", "eval_trials", "threads"])
        _nonneg(self, "train", ["grad_clip", "rate_target_hz", "rate_reg", "checkpoint_every"])
        if not 0 < self.lr_min_factor <= 1:
            raise ConfigError(f"train.lr_min_factor must be in (0, 1], got {self.lr_min_factor}")
        if not 0 < self.target_accuracy <= 1.0:
            raise ConfigError(f"train.target_accuracy must be in (0, 1], got {self.target_accuracy}")
        _choice(self, "train", "dtype", ["float32", "float64"])
        _choice(self, "train", "device", ["cpu", "cuda", "auto"])
        _choice(self, "train", "engine", ["auto", "fused", "reference"])
        from rules.base import RATE_REG_FORMS

        _choice(self, "train", "rate_reg_form", list(RATE_REG_FORMS))
        _nonneg(self, "train", ["rate_target_start_hz"])
        if self.rate_target_start_hz > 0:
            if self.rate_target_hz <= 0:
                raise ConfigError("train.rate_target_start_hz needs train.rate_target_hz > 0 (the schedule is geometric)")
            if not 0 < self.rate_anneal_fraction <= 1:
                raise ConfigError(f"train.rate_anneal_fraction must be in (0, 1], got {self.rate_anneal_fraction}")

    def anneal_iterations(self) -> int:
        """Iterations over which the rate target moves to ``rate_target_hz`` (0: no schedule)."""
        if self.rate_target_start_hz <= 0:
            return 0
        return max(1, math.ceil(self.rate_anneal_fraction * self.iterations))

    def rate_target_at(self, iteration: int) -> float:
        """The regulariser's target at training iteration ``iteration`` (0-based): ``rate_target_hz``,
        or with ``rate_target_start_hz = s > 0`` the geometric schedule
        ``s (f0 / s) ** min(iteration / K, 1)``, K = :meth:`anneal_iterations`."""
        k = self.anneal_iterations()
        if k == 0:
            return self.rate_target_hz
        s = self.rate_target_start_hz
        return s * (self.rate_target_hz / s) ** min(iteration / k, 1.0)


SECTIONS = {"network": NetworkConfig, "surrogate": SurrogateConfig, "train": TrainConfig, "eprop": EpropConfig,
            "hop": HopConfig, "mdgl": MdglConfig}
#: sections read by particular rules only (see LearningRule.config_sections)
RULE_SECTIONS = ("eprop", "hop", "mdgl")
#: keys added after runs existed: at their default they are left out of :meth:`RunConfig.to_dict`
#: (so of ``config.yaml`` and ``config_hash``), which keeps the names of existing runs
HASH_NEUTRAL_DEFAULTS = {("network", "dropout"): 0.0, ("network", "input_dropout"): 0.0,
                         ("network", "bntt"): False, ("network", "conv_channels"): 0, ("network", "dale"): False,
                         ("network", "tau_mem_max_ms"): 0.0,
                         ("train", "rate_reg_form"): "neuron", ("train", "rate_target_start_hz"): 0.0}
#: keys that only enter the identity of runs in which the key named beside them is on
ONLY_WITH = {("network", "bntt_gamma"): "bntt", ("network", "conv_kernel"): "conv_channels",
             ("network", "conv_padding"): "conv_channels", ("network", "conv_pool"): "conv_channels",
             ("network", "conv_scale"): "conv_channels", ("network", "exc_fraction"): "dale",
             ("train", "rate_anneal_fraction"): "rate_target_start_hz"}


#: train keys that only add output files; left out of to_dict (and the config hash) when false
OUTPUT_KEYS = ("tensorboard",)
#: keys written to config.yaml only when they differ from these defaults, so that the files
#: (and the hashes) of runs made before the key existed stay the same
OMITTED_AT_DEFAULT = {"engine": "auto"}


def _rule_sections(rule: str) -> tuple:
    import rules

    try:
        return tuple(rules.get_rule_class(rule).config_sections)
    except ValueError:
        return RULE_SECTIONS  # unknown rule: keep everything (validate() reports the rule)


@dataclass
class RunConfig:
    task: str = "add"
    rule: str = "bptt"
    seed: int = 0
    task_params: Dict[str, Any] = field(default_factory=dict)  # overrides of the task's defaults
    network: NetworkConfig = field(default_factory=NetworkConfig)
    surrogate: SurrogateConfig = field(default_factory=SurrogateConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eprop: EpropConfig = field(default_factory=EpropConfig)
    hop: HopConfig = field(default_factory=HopConfig)
    mdgl: MdglConfig = field(default_factory=MdglConfig)

    # -- validation ------------------------------------------------------------------------
    def validate(self) -> "RunConfig":
        import rules
        import tasks

        ensure_loaded()
        try:
            task = tasks.get_task(self.task, self.task_params, self.network.dt_ms)
            task.require()  # data sets of optional extras (digits: scikit-learn)
            rules.get_rule_class(self.rule)
        except ConfigError:
            raise
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")
        for name in SECTIONS:
            getattr(self, name).validate()
        if self.network.conv_channels:
            conv_geometry(self.network, task)
        if self.network.conv_channels and self.network.bntt:
            raise ConfigError("network.bntt and the conv front end (network.conv_channels > 0) do not combine "
                              "(BNTT normalises the inputs of a front end-less network); turn one off")
        if self.network.bntt and self.train.batch_size < 2:
            raise ConfigError(f"network.bntt needs train.batch_size >= 2 (batch statistics per step), "
                              f"got {self.train.batch_size}")
        return self

    # -- (de)serialisation -------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        """Plain nested dict. Rule-specific sections (e.g. ``eprop``) appear only for the
        rules that read them, and output switches (``train.tensorboard``) only when on, so
        they never change the identity (hash) of other runs."""
        d = dataclasses.asdict(self)
        task = {"name": d.pop("task"), **d.pop("task_params")}
        used = _rule_sections(self.rule)
        for section in RULE_SECTIONS:
            if section not in used:
                d.pop(section, None)
        for key in OUTPUT_KEYS:  # output switches: present only when on, so the default keeps old hashes
            if not d["train"][key]:
                del d["train"][key]
        for key, default in OMITTED_AT_DEFAULT.items():
            if d["train"].get(key) == default:
                del d["train"][key]
        for (section, key), switch in ONLY_WITH.items():
            if section in d and not d[section].get(switch):
                d[section].pop(key, None)
        for (section, key), default in HASH_NEUTRAL_DEFAULTS.items():
            if section in d and d[section].get(key) == default:
                del d[section][key]
        return {"task": task, **d}

    def resolved_dict(self) -> Dict[str, Any]:
        """Like :meth:`to_dict` but with every task parameter, defaults included."""
        import tasks

        d = self.to_dict()
        t = tasks.get_task(self.task, self.task_params, self.network.dt_ms)
        d["task"] = {"name": self.task, **dataclasses.asdict(t.params)}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunConfig":
        cfg = cls()
        apply_mapping(cfg, d)
        return cfg


def conv_geometry(net: NetworkConfig, task):
    """The :class:`~cognet.core.conv.ConvGeometry` of ``network.conv_*`` on ``task``'s images
    (``None`` when the front end is off); :class:`ConfigError` when it does not fit."""
    from cognet.core.conv import ConvGeometry

    if not net.conv_channels:
        return None
    image = getattr(task, "image_shape", None)
    if not image:
        raise ConfigError(f"network.conv_channels={net.conv_channels} needs an image task (digits); "
                          f"task {task.name!r} has no image input")
    try:
        return ConvGeometry(tuple(image), net.conv_channels, net.conv_kernel, net.conv_padding, net.conv_pool).check()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _positive(obj, section: str, keys: Sequence[str]) -> None:
    for k in keys:
        v = getattr(obj, k)
        if not (v > 0 and math.isfinite(v)):
            raise ConfigError(f"{section}.{k} must be positive, got {v!r}")


def _nonneg(obj, section: str, keys: Sequence[str]) -> None:
    for k in keys:
        v = getattr(obj, k)
        if not (v >= 0 and math.isfinite(v)):
            raise ConfigError(f"{section}.{k} must be >= 0, got {v!r}")


def _choice(obj, section: str, key: str, allowed: Sequence[str]) -> None:
    v = getattr(obj, key)
    if v not in allowed:
        raise ConfigError(f"{section}.{key} must be one of {list(allowed)}, got {v!r}")


TOP_KEYS = ("task", "rule", "seed", "network", "surrogate", "train", "eprop", "hop", "mdgl")


def set_key(cfg: RunConfig, key: str, value: Any) -> None:
    """Set a dotted ``key`` (e.g. ``network.n_rec``) to ``value`` with type coercion."""
    parts = key.split(".")
    head = parts[0]
    if head == "task":
        if len(parts) == 1:
            cfg.task = str(value)
        elif len(parts) == 2 and parts[1] == "name":
            cfg.task = str(value)
        elif len(parts) == 2:
            cfg.task_params[parts[1]] = value  # validated against the task's parameters later
        else:
            raise ConfigError(f"unknown config key {key!r}")
        return
    if head in ("rule", "seed") and len(parts) == 1:
        try:
            setattr(cfg, head, coerce(value, int, head) if head == "seed" else str(value))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return
    if head in SECTIONS and len(parts) == 2:
        section = getattr(cfg, head)
        fields = {f.name for f in dataclasses.fields(section)}
        if parts[1] not in fields:
            raise ConfigError(f"unknown config key {key!r}; allowed in {head!r}: {sorted(fields)}")
        current = getattr(section, parts[1])
        try:
            setattr(section, parts[1], coerce(value, type(current), key))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return
    allowed = ["task", "task.<param>", "rule", "seed"] + [f"{s}.<key>" for s in SECTIONS]
    raise ConfigError(f"unknown config key {key!r}; allowed: {allowed}")


def apply_mapping(cfg: RunConfig, d: Mapping[str, Any], prefix: str = "") -> None:
    if not isinstance(d, Mapping):
        raise ConfigError(f"config {prefix or 'file'} must be a mapping, got {type(d).__name__}")
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and (key in SECTIONS or key == "task"):
            apply_mapping(cfg, v, key + ".")
        else:
            set_key(cfg, key, v)


def parse_sets(items: Sequence[str]) -> List[tuple]:
    out = []
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        k, v = item.split("=", 1)
        try:
            value = yaml.safe_load(v) if v.strip() else v
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {k.strip()}: {v!r} is not a valid value ({str(exc).splitlines()[0]}); "
                              "quote it to pass a string") from None
        except RecursionError:
            raise ConfigError(f"--set {k.strip()}: the value is nested too deeply") from None
        out.append((k.strip(), value))
    return out


def load_yaml(path: str | Path) -> Dict[str, Any]:
    try:
        with open(path) as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"config file {path} is nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not a text file ({exc.reason})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def build_config(
    task: Optional[str] = None, rule: Optional[str] = None, seed: Optional[int] = None,
    config_file: Optional[str] = None, sets: Sequence[str] = (),
) -> RunConfig:
    """Defaults, then the task's recommended settings (and those for the chosen rule), then
    the YAML file, then ``--task/--rule/--seed``, then ``--set`` items."""
    cfg = RunConfig()
    file_data = load_yaml(config_file) if config_file else {}
    sets_parsed = parse_sets(sets)
    # which task? (the last word wins: --set task=..., --task, the file, the default)
    name = cfg.task
    file_task = file_data.get("task")
    if isinstance(file_task, Mapping):
        name = file_task.get("name", name)
    elif file_task is not None:
        name = file_task
    if task is not None:
        name = task
    rule_name = rule if rule is not None else file_data.get("rule", cfg.rule)
    for k, v in sets_parsed:
        if k in ("task", "task.name"):
            name = v
        if k == "rule":
            rule_name = v
    import tasks as _tasks

    ensure_loaded()
    try:
        task_cls = _tasks.get_task_class(str(name))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    for k, v in {**task_cls.recommended, **task_cls.recommended_for_rule.get(str(rule_name), {})}.items():
        set_key(cfg, k, v)
    if file_data:
        apply_mapping(cfg, file_data)
    if task is not None:
        cfg.task = task
    if rule is not None:
        cfg.rule = rule
    if seed is not None:
        set_key(cfg, "seed", seed)
    for k, v in sets_parsed:
        set_key(cfg, k, v)
    cfg.validate()
    net = cfg.network
    # a new run's settings only: runs saved while this was ignored (one constant tau_a) still load
    if 0 < net.tau_adapt_max_ms <= net.tau_adapt_ms:
        raise ConfigError(f"network.tau_adapt_max_ms must be 0 (one adaptation time constant) or above "
                          f"network.tau_adapt_ms={net.tau_adapt_ms}, got {net.tau_adapt_max_ms}")
    return cfg
