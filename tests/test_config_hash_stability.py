"""Run directories are named by their config hash: a new config key, a moved module or a
plug-in mechanism must not rename the runs users already have. ``data/config_hashes.json``
holds the hashes of every task x {bptt, eprop-random, eprop-symmetric} default config as
computed before the package was layered (cognet 0.1.0, commit e92423d), except the e-prop
entries of the thirteen tasks that got e-prop recommendations of their own (issue 20: a wider
network and a longer budget, ``tasks.base.EPROP_SETTINGS``; ``dup-rev``: 1024 neurons instead of
512, BPTT's budget): that change is meant to rename
those defaults. ``data/config_hashes_before_issue20.json`` keeps their earlier hashes, and a
user who sets the earlier values back gets the earlier run directories. ``dup-rev``'s e-prop
defaults moved once more (slow adaptation, ``tasks.multitask.EPROP_SLOW_ADAPTATION``, and for
``eprop-random`` 512 neurons instead of 1024); ``data/config_hashes_before_slow_adaptation.json``
keeps their hashes before that. ``eprop-random`` went back to 1024 neurons once slow adaptation had
been measured on both widths; ``data/config_hashes_before_random_1024.json`` keeps its 512-neuron
hash. Both rules then got stronger adaptation on ``dup-rev`` (beta 2.0 instead of BPTT's 1.0,
``tasks.multitask.EPROP_STRONG_ADAPTATION``); ``data/config_hashes_before_beta2.json`` keeps the
hashes with beta 1.0 (``--set network.beta=1.0`` finds those runs, and the earlier tests set it
too). Then e-prop's ``dup-rev`` budget went from BPTT's 20 000 iterations to 30 000
(``tasks.multitask.EPROP_LONG_BUDGET``); ``data/config_hashes_before_30k.json`` keeps the hashes at
20 000 (``--set train.iterations=20000``; the earlier tests set it too). Last, ``eprop-random``
alone got beta 3.0 on ``dup-rev`` (``tasks.multitask.EPROP_RANDOM_ADAPTATION``);
``data/config_hashes_before_random_beta3.json`` keeps its beta-2.0 hash (``--set network.beta=2.0``,
which the 20 000-iteration test sets too). Then ``eprop-random`` on ``dup-rev`` got batch 128
(``tasks.multitask.EPROP_RANDOM_BATCH``); ``data/config_hashes_before_random_bs128.json`` keeps its
batch-64 hash (``--set train.batch_size=64``, which the earlier tests set too)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cognet.training.config import build_config
from cognet.training.trainer import config_hash


def _hashes(name: str) -> dict:
    return json.loads((Path(__file__).parent / "data" / f"{name}.json").read_text())


HASHES = _hashes("config_hashes")
BEFORE_ISSUE20 = _hashes("config_hashes_before_issue20")
BEFORE_SLOW_ADAPTATION = _hashes("config_hashes_before_slow_adaptation")
BEFORE_RANDOM_1024 = _hashes("config_hashes_before_random_1024")
BEFORE_BETA2 = _hashes("config_hashes_before_beta2")
BEFORE_30K = _hashes("config_hashes_before_30k")
BEFORE_RANDOM_BETA3 = _hashes("config_hashes_before_random_beta3")
BEFORE_RANDOM_BS128 = _hashes("config_hashes_before_random_bs128")


@pytest.mark.parametrize("key", sorted(HASHES))
def test_default_config_hash_is_unchanged(key):
    task, rule = key.split("/")
    assert config_hash(build_config(task=task, rule=rule)) == HASHES[key]


@pytest.mark.parametrize("key", sorted(BEFORE_ISSUE20))
def test_earlier_eprop_runs_are_found_with_the_earlier_settings(key):
    import tasks
    from tasks.base import EPROP_SETTINGS

    task, rule = key.split("/")
    cls = tasks.get_task_class(task)
    assert rule in cls.recommended_for_rule
    cfg = build_config(task=task, rule=rule)
    assert config_hash(cfg) != BEFORE_ISSUE20[key]
    # the values before the e-prop recommendation: the task's own (or the defaults), as BPTT gets them
    base = build_config(task=task, rule="bptt")
    keys = set(EPROP_SETTINGS) | set(cls.recommended_for_rule[rule])
    sets = [f"{k}={_get(base, k)}".lower() for k in sorted(keys)]
    assert config_hash(build_config(task=task, rule=rule, sets=sets)) == BEFORE_ISSUE20[key]


@pytest.mark.parametrize("key", sorted(BEFORE_SLOW_ADAPTATION))
def test_dup_rev_eprop_runs_before_slow_adaptation_are_found(key):
    """The runs of the recommendation before slow adaptation (1024 neurons, U(10, 200) ms) keep
    their directories when those values are set back; the new default is another run."""
    from tasks.multitask import EPROP_LONG_BUDGET, EPROP_SLOW_ADAPTATION, EPROP_STRONG_ADAPTATION

    assert key.startswith("dup-rev/")
    cfg, _, found = _with_bptt_values(key, {**EPROP_SLOW_ADAPTATION, **EPROP_STRONG_ADAPTATION, **EPROP_LONG_BUDGET},
                                      ["network.n_rec=1024"])
    assert config_hash(cfg) != BEFORE_SLOW_ADAPTATION[key] and found == BEFORE_SLOW_ADAPTATION[key]


@pytest.mark.parametrize("key", sorted(BEFORE_RANDOM_1024))
def test_dup_rev_eprop_random_runs_on_512_neurons_are_found(key):
    """Slow adaptation on 512 neurons was eprop-random's recommendation for a while: its runs
    keep their directories with ``network.n_rec=512`` (and BPTT's beta, which they had)."""
    from tasks.multitask import EPROP_LONG_BUDGET, EPROP_STRONG_ADAPTATION

    cfg, _, found = _with_bptt_values(key, {**EPROP_STRONG_ADAPTATION, **EPROP_LONG_BUDGET}, ["network.n_rec=512"])
    assert cfg.network.n_rec == 1024 and config_hash(cfg) != BEFORE_RANDOM_1024[key]
    assert found == BEFORE_RANDOM_1024[key]


@pytest.mark.parametrize("key", sorted(BEFORE_BETA2))
def test_dup_rev_eprop_runs_with_beta_1_are_found(key):
    """The slow-adaptation recommendation with BPTT's beta 1.0 (before beta 2.0) keeps its run
    directories with ``network.beta=1.0``; the new default is another run."""
    from tasks.multitask import EPROP_LONG_BUDGET, EPROP_STRONG_ADAPTATION

    cfg, bptt, found = _with_bptt_values(key, {**EPROP_STRONG_ADAPTATION, **EPROP_LONG_BUDGET})
    assert EPROP_STRONG_ADAPTATION == {"network.beta": 2.0}
    assert cfg.network.beta >= 2.0 > bptt.network.beta and config_hash(cfg) != BEFORE_BETA2[key]
    assert found == BEFORE_BETA2[key]


#: the --set that takes ``eprop-random`` back to the batch its runs before batch 128 had
_BS64 = {"dup-rev/eprop-random": ["train.batch_size=64"], "dup-rev/eprop-symmetric": []}
#: ... and to the beta its runs before beta 3.0 had
_BETA2 = {k: v + (["network.beta=2.0"] if k == "dup-rev/eprop-random" else []) for k, v in _BS64.items()}


@pytest.mark.parametrize("key", sorted(BEFORE_30K))
def test_dup_rev_eprop_runs_at_20000_iterations_are_found(key):
    """The beta-2.0 recommendation at BPTT's 20 000 iterations (before 30 000) keeps its run
    directories with ``train.iterations=20000``; the new default is another run."""
    from tasks.multitask import EPROP_LONG_BUDGET

    cfg, bptt, found = _with_bptt_values(key, EPROP_LONG_BUDGET, _BETA2[key])
    assert cfg.train.iterations == EPROP_LONG_BUDGET["train.iterations"] > bptt.train.iterations == 20000
    assert config_hash(cfg) != BEFORE_30K[key] and found == BEFORE_30K[key]


@pytest.mark.parametrize("key", sorted(BEFORE_RANDOM_BETA3))
def test_dup_rev_eprop_random_runs_with_beta_2_are_found(key):
    """``eprop-random``'s recommendation with beta 2.0 (before beta 3.0; 30 000 iterations) keeps
    its run directories with ``network.beta=2.0``; ``eprop-symmetric`` keeps beta 2.0."""
    from tasks.multitask import EPROP_RANDOM_ADAPTATION, EPROP_STRONG_ADAPTATION

    assert key == "dup-rev/eprop-random"
    cfg = build_config(task="dup-rev", rule="eprop-random")
    assert cfg.network.beta == EPROP_RANDOM_ADAPTATION["network.beta"] == 3.0
    assert config_hash(cfg) != BEFORE_RANDOM_BETA3[key]
    assert build_config(task="dup-rev", rule="eprop-symmetric").network.beta == EPROP_STRONG_ADAPTATION["network.beta"]
    assert config_hash(build_config(task="dup-rev", rule="eprop-random", sets=_BETA2[key])) == BEFORE_RANDOM_BETA3[key]


@pytest.mark.parametrize("key", sorted(BEFORE_RANDOM_BS128))
def test_dup_rev_eprop_random_runs_with_batch_64_are_found(key):
    """``eprop-random``'s recommendation at batch 64 (before batch 128; beta 3.0, 30 000
    iterations) keeps its run directories with ``train.batch_size=64``; BPTT and
    ``eprop-symmetric`` keep batch 64."""
    from tasks.multitask import EPROP_RANDOM_BATCH

    assert key == "dup-rev/eprop-random"
    cfg = build_config(task="dup-rev", rule="eprop-random")
    assert cfg.train.batch_size == EPROP_RANDOM_BATCH["train.batch_size"] == 128
    assert build_config(task="dup-rev", rule="eprop-symmetric").train.batch_size == 64
    assert build_config(task="dup-rev", rule="bptt").train.batch_size == 64
    assert config_hash(cfg) != BEFORE_RANDOM_BS128[key]
    assert config_hash(build_config(task="dup-rev", rule="eprop-random", sets=_BS64[key])) == BEFORE_RANDOM_BS128[key]


def _with_bptt_values(key, keys, extra_sets=()):
    """The default config of ``key`` ("task/rule"), BPTT's, and the hash of the default with
    ``extra_sets`` and ``keys`` set back to BPTT's values. The batch is always set back too:
    every recommendation before ``EPROP_RANDOM_BATCH`` had BPTT's (a no-op for the other rules)."""
    from tasks.multitask import EPROP_RANDOM_BATCH

    task, rule = key.split("/")
    bptt = build_config(task=task, rule="bptt")
    sets = list(extra_sets) + [f"{k}={_get(bptt, k)}" for k in sorted({**keys, **EPROP_RANDOM_BATCH})]
    return build_config(task=task, rule=rule), bptt, config_hash(build_config(task=task, rule=rule, sets=sets))


def _get(cfg, dotted):
    section, name = dotted.split(".")
    return getattr(getattr(cfg, section), name)


def test_rate_regulariser_form_enters_the_hash_only_off_its_default():
    from cognet.training.config import ConfigError

    assert config_hash(build_config("add", sets=["train.rate_reg_form=neuron"])) == config_hash(build_config("add"))
    pop = build_config("add", sets=["train.rate_reg_form=population"])
    assert config_hash(pop) != config_hash(build_config("add")) and pop.to_dict()["train"]["rate_reg_form"] == "population"
    with pytest.raises(ConfigError, match="rate_reg_form"):
        build_config("add", sets=["train.rate_reg_form=mean"])
