"""Run directories are named by their config hash: a new config key, a moved module or a
plug-in mechanism must not rename the runs users already have. ``data/config_hashes.json``
holds the hashes of every task x {bptt, eprop-random, eprop-symmetric} default config as
computed before the package was layered (cognet 0.1.0, commit e92423d)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cognet.training.config import build_config
from cognet.training.trainer import config_hash

HASHES = json.loads((Path(__file__).parent / "data" / "config_hashes.json").read_text())


@pytest.mark.parametrize("key", sorted(HASHES))
def test_default_config_hash_is_unchanged(key):
    task, rule = key.split("/")
    assert config_hash(build_config(task=task, rule=rule)) == HASHES[key]


def test_rate_regulariser_form_enters_the_hash_only_off_its_default():
    from cognet.training.config import ConfigError

    assert config_hash(build_config("add", sets=["train.rate_reg_form=neuron"])) == config_hash(build_config("add"))
    pop = build_config("add", sets=["train.rate_reg_form=population"])
    assert config_hash(pop) != config_hash(build_config("add")) and pop.to_dict()["train"]["rate_reg_form"] == "population"
    with pytest.raises(ConfigError, match="rate_reg_form"):
        build_config("add", sets=["train.rate_reg_form=mean"])
