"""Fuzzing the configuration entry points with Hypothesis (issue 16).

Whatever ``--set`` items or config file a user passes, :func:`build_config` either returns a
valid configuration or raises :class:`ConfigError` (which the CLI turns into ``Error: ...``,
exit code 2); never another exception. A valid configuration survives the round trip through
``config.yaml`` with the same run hash, and the memory estimate accepts or refuses it cleanly.
"""

import os
import tempfile

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from cognet.core.errors import ConfigError  # noqa: E402
from cognet.training.config import SECTIONS, RunConfig, build_config  # noqa: E402
from cognet.training.guards import check_memory  # noqa: E402
from cognet.training.trainer import config_hash  # noqa: E402

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)

_KNOWN = sorted({f"{s}.{f}" for s, cls in SECTIONS.items() for f in cls.__dataclass_fields__}
                | {"task", "task.name", "rule", "seed", "task.n_bits", "task.step_ms", "task.nope"})
KEYS = st.one_of(st.sampled_from(_KNOWN), st.text(min_size=0, max_size=12),
                 st.builds(lambda a, b: f"{a}.{b}", st.sampled_from(list(SECTIONS) + ["task", "x"]),
                           st.text(max_size=8)))
VALUES = st.one_of(
    st.sampled_from(["inf", "-inf", "nan", ".nan", "1e12", "1e400", "-1", "0", "0.5", "[1", "{a: 1}", "[]", "~",
                     "true", "yes", "'3'", "9" * 40, "1_000", "0x10", "!!python/object:os.system", "&a [*a]",
                     "\x00", "1.5", "bptt", "xor", "float64", "auto", "cuda"]),
    st.integers(min_value=-10**20, max_value=10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=20),
)


def _check(cfg: RunConfig) -> None:
    """A configuration build_config accepted: valid, hash-stable through config.yaml, sized."""
    import tasks

    cfg.validate()
    again = RunConfig.from_dict(yaml.safe_load(yaml.safe_dump(cfg.resolved_dict(), sort_keys=False))).validate()
    assert config_hash(again) == config_hash(cfg)
    try:
        check_memory(cfg, tasks.get_task(cfg.task, cfg.task_params, cfg.network.dt_ms))
    except ConfigError as exc:
        assert "GiB" in str(exc)


@FUZZ
@given(st.lists(st.tuples(KEYS, VALUES), min_size=1, max_size=3))
def test_set_items_give_a_config_or_a_config_error(items):
    sets = [f"{k}={v}" for k, v in items]
    try:
        cfg = build_config(task="xor", sets=sets)
    except ConfigError as exc:
        assert str(exc)  # a message naming what was wrong
        return
    _check(cfg)


_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-10**6, max_value=10**6),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=10))
_TREES = st.recursive(_SCALARS, lambda kids: st.one_of(st.lists(kids, max_size=3),
                                                       st.dictionaries(st.text(max_size=8), kids, max_size=3)),
                      max_leaves=12)
_SECTION = st.dictionaries(st.sampled_from([f for cls in SECTIONS.values() for f in cls.__dataclass_fields__]
                                           + ["bogus"]), _SCALARS, max_size=4)
CONFIGS = st.one_of(
    st.dictionaries(st.sampled_from(list(SECTIONS) + ["task", "rule", "seed", "other"]), st.one_of(_SECTION, _TREES),
                    max_size=4),
    _TREES,
)


@FUZZ
@given(CONFIGS)
def test_config_files_give_a_config_or_a_config_error(data):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "c.yaml")
        with open(path, "w") as fh:
            yaml.safe_dump(data, fh)
        try:
            cfg = build_config(task="xor", config_file=path)
        except ConfigError as exc:
            assert str(exc)
            return
    _check(cfg)


@FUZZ
@given(st.binary(max_size=200))
def test_arbitrary_bytes_as_config_file(blob):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "c.yaml")
        with open(path, "wb") as fh:
            fh.write(blob)
        try:
            cfg = build_config(task="xor", config_file=path)
        except ConfigError:
            return
    _check(cfg)
