"""The symbolic task suite: targets against Python integer/list arithmetic, shapes, masks,
chance levels, the unseen split, population encoding, parameter errors, task scripts."""

import importlib.util
import json
import os
import runpy
import subprocess
import sys
from collections import Counter
from itertools import product
from math import comb
from pathlib import Path

import pytest
import torch

import tasks
from cognet.core.encoding import bits_of, int_of

ROOT = Path(__file__).resolve().parents[1]
ALL = ["copy", "reverse", "duplicate", "dup-rev", "store-recall", "xor", "parity",
       "add", "subtract", "compare", "multiply", "count"]
NUMBER_TASKS = ["add", "subtract", "compare", "multiply"]


def g(seed=0):
    return torch.Generator().manual_seed(seed)


def env():
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return e


# -- registry, shapes, masks ------------------------------------------------------------------

def test_all_tasks_registered_with_script_modules():
    assert set(ALL) <= set(tasks.TASKS)
    for name in ALL:
        module = tasks.script_module(name)
        assert "-" not in module
        assert importlib.util.find_spec(module) is not None, module
    assert tasks.script_module("store-recall") == "tasks.store_recall"
    assert tasks.script_module("dup-rev") == "tasks.dup_rev"


def _variants():
    out = [(n, {}) for n in ALL]
    out += [(n, {"encoding": "population"}) for n in NUMBER_TASKS + ["count"]]
    out += [("dup-rev", {"encoding": "onehot"}), ("dup-rev", {"cue_once": False, "test_split": "random"})]
    return out


@pytest.mark.parametrize("name,over", _variants())
def test_shapes_masks_windows(name, over):
    t = tasks.get_task(name, over)
    for split in ("train", "eval", "test"):
        b = t.sample(6, g(1), split=split)
        W = len(b.windows)
        assert b.x.shape == (t.T, 6, t.n_in)
        assert b.active.shape == (t.n_symbol_steps(), 6, len(t.channels()))
        assert b.mask.shape == (W, 6) and b.mask.dtype == torch.bool and b.mask.all()
        if t.output == "bits":
            assert b.target.shape == (W, 6, t.n_out) and set(b.target.unique().tolist()) <= {0.0, 1.0}
        else:
            assert b.target.shape == (W, 6) and b.target.dtype == torch.long
            assert 0 <= int(b.target.min()) and int(b.target.max()) < t.n_out
        for start, end in b.windows:
            assert 0 <= start < end <= t.T
        # every symbol step shows at most the channels of one symbol; no step is outside the trial
        assert ((b.active == 0) | (b.active == 1)).all()
        ch = t.chance()
        assert 0 < ch["sequence_accuracy"] <= ch["bit_accuracy"] <= 1
        # perfect logits score 1, and the loss is finite
        if t.output == "bits":
            perfect = (b.target * 2 - 1) * 6.0
        else:
            perfect = torch.nn.functional.one_hot(b.target, t.n_out).float() * 12.0
        assert t.score(perfect, b) == {"bit_accuracy": 1.0, "sequence_accuracy": 1.0}
        assert torch.isfinite(t.loss(perfect, b))


def test_bad_split_is_named():
    with pytest.raises(ValueError, match="split must be one of .*'validation'"):
        tasks.get_task("copy").sample(2, g(), split="validation")


# -- bit strings -----------------------------------------------------------------------------

def test_duplicate_targets_are_the_string_twice():
    t = tasks.get_task("duplicate", {"n_bits": 3})
    b = t.sample(30, g(2))
    assert t.n_symbol_steps() == 9 and len(b.windows) == 6
    for k in range(30):
        bits = b.info["bits"][k].tolist()
        assert b.target[:, k, 0].long().tolist() == bits + bits
        assert b.active[:3, k, :2].argmax(-1).tolist() == bits
        assert b.active[3:, k, 2].all() and not b.active[:3, k, 2].any()
    assert b.phases["recall"] == [(3 * t.steps_per_symbol, 9 * t.steps_per_symbol)]
    assert t.chance() == {"bit_accuracy": 0.5, "sequence_accuracy": 1 / 8}


# -- dup-rev (Salaj et al. 2021) ---------------------------------------------------------------

def _read_symbols_binary(act, L, w):
    return [int_of([int(act[i, 2 * k + 1]) for k in range(w)]) for i in range(L)]


@pytest.mark.parametrize("encoding", ["binary", "onehot"])
def test_dup_rev_targets_and_cue(encoding):
    t = tasks.get_task("dup-rev", {"encoding": encoding})
    L, w = 5, 5
    b = t.sample(40, g(5))
    ch = t.channels()
    cue = [ch.index("cue=duplicate"), ch.index("cue=reverse")]
    eos, go = ch.index("eos"), ch.index("go")
    assert t.n_symbol_steps() == 12 and b.windows == [t.window_of(s) for s in range(6, 12)]
    assert set(b.info["task"]) == {0, 1}
    for k in range(40):
        s, task = b.info["symbols"][k], b.info["task"][k]
        assert len(s) == L and all(1 <= v <= 31 for v in s)
        act = b.active[:, k]
        shown = _read_symbols_binary(act, L, w) if encoding == "binary" else \
            [int(act[i, :31].argmax()) + 1 for i in range(L)]
        assert shown == s
        # the cue is shown once, at step 0, on the channel of the trial's task
        assert act[:, cue[task]].tolist() == [1.0] + [0.0] * 11
        assert not act[:, cue[1 - task]].any()
        assert act[:, eos].tolist() == [0.0] * 5 + [1.0] + [0.0] * 6
        assert act[:, go].tolist() == [0.0] * 6 + [1.0] * 6
        want = s if task == 0 else s[::-1]
        if encoding == "binary":
            got = [int_of(b.target[i, k, :w].long().tolist()) for i in range(L)]
            assert got == want and b.target[:L, k, w].sum() == 0
            assert b.target[L, k].tolist() == [0.0] * w + [1.0]
        else:
            assert (b.target[:L, k] + 1).tolist() == want and int(b.target[L, k]) == 31


def test_dup_rev_cue_throughout_input():
    t = tasks.get_task("dup-rev", {"cue_once": False, "length": 3, "width": 2})
    b = t.sample(10, g())
    ch = t.channels()
    for k in range(10):
        c = ch.index("cue=" + ("duplicate", "reverse")[b.info["task"][k]])
        assert b.active[:, k, c].tolist() == [1.0] * 3 + [0.0] * 5


def test_dup_rev_unseen_split_is_disjoint_from_training():
    t = tasks.get_task("dup-rev", {"length": 2, "width": 3, "unseen_fraction": 0.25})
    all_strings = [list(s) for s in product(range(1, 8), repeat=2)]
    unseen = {tuple(s) for s in all_strings if t.is_unseen(s)}
    assert 0 < len(unseen) < len(all_strings)
    gen = g(7)
    train = {tuple(s) for _ in range(20) for s in t.sample(64, gen, split="train").info["symbols"]}
    held = {tuple(s) for split in ("eval", "test") for s in t.sample(200, gen, split=split).info["symbols"]}
    assert train and held and not (train & held)
    assert held <= unseen and not (train & unseen)
    assert len(train) == len(all_strings) - len(unseen)  # 1280 draws cover all 49 - |unseen| strings
    # both cues are tested on unseen strings
    assert set(t.sample(50, g(1), split="test").info["task"]) == {0, 1}
    # the unseen set has about the requested size at the default length
    t5 = tasks.get_task("dup-rev")
    frac = sum(t5.is_unseen(s) for s in torch.randint(1, 32, (4000, 5), generator=g()).tolist()) / 4000
    assert frac == pytest.approx(0.1, abs=0.02)
    # another split_seed picks another set; test_split=random uses all strings for everything
    other = tasks.get_task("dup-rev", {"length": 2, "width": 3, "unseen_fraction": 0.25, "split_seed": 1})
    assert {tuple(s) for s in all_strings if other.is_unseen(s)} != unseen
    rnd = tasks.get_task("dup-rev", {"length": 2, "width": 3, "test_split": "random"})
    assert len({tuple(s) for s in rnd.sample(400, g(), split="test").info["symbols"]} & unseen) > 0


def test_trainer_scores_held_out_on_the_unseen_split(monkeypatch):
    from cognet.training.config import build_config
    from cognet.training.trainer import Trainer

    cfg = build_config("dup-rev", sets=["network.n_rec=10", "train.eval_trials=8", "task.length=2",
                                         "task.width=2", "task.unseen_fraction=0.3"])
    tr = Trainer(cfg, None, progress=False)
    seen = []
    orig = tr.task.sample

    def spy(batch, generator, split="train"):
        b = orig(batch, generator, split=split)
        seen.append((split, b.info["unseen"]))
        return b

    monkeypatch.setattr(tr.task, "sample", spy)
    tr.evaluate()
    tr.evaluate(stream="test")
    assert [s for s, _ in seen] == ["eval", "test"]
    assert all(all(u) for _, u in seen)


def test_dup_rev_chance():
    t = tasks.get_task("dup-rev", {"encoding": "onehot"})
    assert t.chance()["bit_accuracy"] == pytest.approx((5 / 31 + 1) / 6)
    assert t.chance()["sequence_accuracy"] == pytest.approx(31.0 ** -5)
    tb = tasks.get_task("dup-rev", {"length": 2, "width": 2, "test_split": "random"})
    # enumerate: symbols 1..3 (bits 01, 10, 11); each bit is 1 in 2 of 3 values; flags/EOS fixed
    assert tb.chance()["bit_accuracy"] == pytest.approx((2 * (2 * 2 / 3 + 1) + 3) / 9)
    assert tb.chance()["sequence_accuracy"] == pytest.approx(1 / 9)


# -- memory and logic -----------------------------------------------------------------------

@pytest.mark.parametrize("n_bits", [1, 3])
def test_store_recall_targets(n_bits):
    t = tasks.get_task("store-recall", {"n_steps": 6, "n_bits": n_bits})
    b = t.sample(50, g(n_bits))
    ch = t.channels()
    store, recall = ch.index("store"), ch.index("recall")
    assert b.windows == [t.window_of(5)]
    positions = set()
    for k in range(50):
        act = b.active[:, k]
        steps = [i for i in range(6) if act[i, store] == 1]
        assert len(steps) == 1 and steps[0] < 5
        positions.add(steps[0])
        assert act[:, recall].tolist() == [0.0] * 5 + [1.0]
        for i in range(5):  # a word is shown at every stream step
            assert all(act[i, 2 * j] + act[i, 2 * j + 1] == 1 for j in range(n_bits))
        word = [int(act[steps[0], 2 * j + 1]) for j in range(n_bits)]
        assert b.target[0, k].long().tolist() == word == b.info["stored"][k]
    assert positions == set(range(5))


@pytest.mark.parametrize("delay", [0, 2])
def test_xor_targets(delay):
    t = tasks.get_task("xor", {"delay_steps": delay})
    b = t.sample(40, g(delay))
    assert t.n_symbol_steps() == 2 * delay + 3
    for k in range(40):
        act = b.active[:, k]
        first, second = int(act[0, :2].argmax()), int(act[delay + 1, :2].argmax())
        assert act[0, :2].sum() == 1 and act[delay + 1, :2].sum() == 1
        assert act[:, :2].sum() == 2 and act[:, 2].tolist() == [0.0] * (2 * delay + 2) + [1.0]
        assert int(b.target[0, k, 0]) == first ^ second
    assert {(a, c) for a, c in zip(b.info["a"], b.info["b"])} == {(0, 0), (0, 1), (1, 0), (1, 1)}


def test_parity_targets():
    t = tasks.get_task("parity", {"n_bits": 5})
    b = t.sample(60, g())
    for k in range(60):
        bits = b.active[:5, k, :2].argmax(-1).tolist()
        assert int(b.target[0, k, 0]) == sum(bits) % 2
    assert b.windows == [t.window_of(5)]


# -- arithmetic ------------------------------------------------------------------------------

@pytest.mark.parametrize("n_bits", [1, 3, 5])
def test_subtract_is_twos_complement_difference(n_bits):
    t = tasks.get_task("subtract", {"n_bits": n_bits})
    b = t.sample(60, g(n_bits))
    for k in range(60):
        a, c = b.info["a"][k], b.info["b"][k]
        act = b.active[:, k]
        assert int_of(act[:n_bits, 1].tolist()) == a and int_of(act[:n_bits, 3].tolist()) == c
        bits = b.target[:, k, 0].long().tolist()
        assert len(bits) == n_bits + 1
        assert int_of(bits) == (a - c) % 2 ** (n_bits + 1)
        assert bits[-1] == int(a < c)  # sign bit
        value = int_of(bits) - (2 ** (n_bits + 1) if bits[-1] else 0)
        assert value == a - c


def test_compare_targets_and_balance():
    t = tasks.get_task("compare", {"n_bits": 3})
    b = t.sample(3000, g())
    for k in range(3000):
        a, c = b.info["a"][k], b.info["b"][k]
        want = 0 if a < c else (1 if a == c else 2)
        assert int(b.target[0, k]) == want
        if k < 50:
            assert int_of(b.active[:3, k, 1].tolist()) == a and int_of(b.active[:3, k, 3].tolist()) == c
    freq = Counter(b.target[0].tolist())
    assert all(abs(freq[c] / 3000 - 1 / 3) < 0.04 for c in range(3))
    assert t.chance() == {"bit_accuracy": 1 / 3, "sequence_accuracy": 1 / 3}
    # unbalanced: uniform operands; best constant guess is a<b (or a>b): 6 of 16 pairs for n=2
    u = tasks.get_task("compare", {"n_bits": 2, "balanced": False})
    assert u.chance()["sequence_accuracy"] == pytest.approx(6 / 16)
    bu = u.sample(4000, g())
    assert Counter(bu.target[0].tolist())[1] / 4000 == pytest.approx(0.25, abs=0.03)


@pytest.mark.parametrize("n_bits", [2, 3])
def test_multiply_targets(n_bits):
    t = tasks.get_task("multiply", {"n_bits": n_bits})
    b = t.sample(60, g(n_bits))
    assert t.n_out == 2 * n_bits and b.windows == [t.window_of(n_bits)]
    for k in range(60):
        a, c = b.info["a"][k], b.info["b"][k]
        assert int_of(b.target[0, k].long().tolist()) == a * c
        assert int_of(b.active[:n_bits, k, 1].tolist()) == a and int_of(b.active[:n_bits, k, 3].tolist()) == c
    # chance by hand for 2x2 bits: the most frequent product is 0 (7 of 16 pairs)
    if n_bits == 2:
        prods = [a * c for a in range(4) for c in range(4)]
        bit_ch = sum(max(sum((p >> i) & 1 for p in prods), 16 - sum((p >> i) & 1 for p in prods)) / 16
                     for i in range(4)) / 4
        assert t.chance() == pytest.approx({"bit_accuracy": bit_ch, "sequence_accuracy": 7 / 16})


@pytest.mark.parametrize("encoding", ["bits", "population"])
def test_count_targets_and_chance(encoding):
    t = tasks.get_task("count", {"n_bits": 6, "encoding": encoding})
    b = t.sample(60, g())
    for k in range(60):
        ones = int(b.active[:6, k, 1].sum())
        if encoding == "bits":
            assert t.n_out == 3 and int_of(b.target[0, k].long().tolist()) == ones
        else:
            assert t.n_out == 7 and int(b.target[0, k]) == ones
    assert t.chance()["sequence_accuracy"] == pytest.approx(comb(6, 3) / 64)


def test_add_chance_is_best_constant_answer():
    t = tasks.get_task("add", {"n_bits": 3})
    sums = [a + c for a in range(8) for c in range(8)]
    per_bit = [max(sum((s >> i) & 1 for s in sums), 64 - sum((s >> i) & 1 for s in sums)) / 64 for i in range(4)]
    assert t.chance() == pytest.approx({"bit_accuracy": sum(per_bit) / 4, "sequence_accuracy": 8 / 64})


@pytest.mark.parametrize("name", NUMBER_TASKS)
def test_population_encoding(name):
    n = 3
    N = 8
    t = tasks.get_task(name, {"n_bits": n, "encoding": "population"})
    assert t.channels()[:N] == [f"a={v}" for v in range(N)] and t.channels()[N:2 * N] == [f"b={v}" for v in range(N)]
    assert t.n_in == (2 * N + 1) * t.params.neurons_per_channel
    assert t.output == "classes" and t.n_symbol_steps() == 3
    b = t.sample(80, g(3))
    assert b.windows == [t.window_of(2)]
    for k in range(80):
        a, c = b.info["a"][k], b.info["b"][k]
        act = b.active[:, k]
        # the number is shown by which group fires: a at step 0, b at step 1, then the end cue
        assert act[0].nonzero().flatten().tolist() == [a]
        assert act[1].nonzero().flatten().tolist() == [N + c]
        assert act[2].nonzero().flatten().tolist() == [2 * N]
        want = {"add": a + c, "subtract": a - c + N - 1, "multiply": a * c,
                "compare": 0 if a < c else (1 if a == c else 2)}[name]
        assert int(b.target[0, k]) == want
    expect_classes = {"add": 2 * N - 1, "subtract": 2 * N - 1, "multiply": (N - 1) ** 2 + 1, "compare": 3}[name]
    assert t.n_out == expect_classes
    if name != "compare":  # uniform operands: the most frequent result over all 64 pairs
        results = Counter(int(b_) for b_ in [
            {"add": a + c, "subtract": a - c, "multiply": a * c}[name] for a in range(N) for c in range(N)])
        assert t.chance()["sequence_accuracy"] == pytest.approx(max(results.values()) / 64)


def test_population_and_bits_give_the_same_results():
    for name in ("add", "subtract", "multiply"):
        bits = tasks.get_task(name, {"n_bits": 3})
        pop = tasks.get_task(name, {"n_bits": 3, "encoding": "population"})
        bb, bp = bits.sample(20, g(9)), pop.sample(20, g(9))
        assert bb.info == bp.info  # same operands from the same seed, same integer results


# -- parameter errors ------------------------------------------------------------------------

@pytest.mark.parametrize("name,over,needle", [
    ("add", {"encoding": "unary"}, r"task.encoding must be one of \['bits', 'population'\], got 'unary'"),
    ("add", {"encoding": "population", "n_bits": 9}, "task.n_bits must be between 1 and 8, got 9"),
    ("multiply", {"n_bits": 0}, "task.n_bits must be between 1 and 15, got 0"),
    ("count", {"encoding": "onehot"}, "task.encoding must be one of"),
    ("store-recall", {"n_steps": 1}, "task.n_steps must be between 2 and 256, got 1"),
    ("xor", {"delay_steps": -1}, "task.delay_steps must be between 0 and 256, got -1"),
    ("parity", {"n_bits": 0}, "task.n_bits"),
    ("duplicate", {"n_bits": 65}, "task.n_bits must be between 1 and 64"),
    ("dup-rev", {"encoding": "bits"}, r"task.encoding must be one of \['binary', 'onehot'\], got 'bits'"),
    ("dup-rev", {"test_split": "seen"}, "task.test_split must be one of"),
    ("dup-rev", {"unseen_fraction": 1.5}, "task.unseen_fraction must be in"),
    ("dup-rev", {"length": 1, "width": 1, "unseen_fraction": 0.5}, "leaves no unseen string"),
    ("dup-rev", {"width": 9}, "task.width must be between 1 and 8, got 9"),
    ("compare", {"balanced": "maybe"}, "task.balanced must be true or false"),
])
def test_bad_params_are_named(name, over, needle):
    with pytest.raises(ValueError, match=needle):
        tasks.get_task(name, over)


# -- scripts -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_every_task_script_shows_the_train_help(name, monkeypatch, capsys):
    # runs the module as __main__ in this process (python -m does the same after the import)
    module = tasks.script_module(name)
    monkeypatch.setattr(sys, "argv", [module, "--help"])
    with pytest.raises(SystemExit) as exc:
        runpy.run_module(module, run_name="__main__", alter_sys=False)
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert f"Usage: python -m {module} [OPTIONS]" in out and "--set KEY=VALUE" in out


def test_task_script_rejects_task_option(capsys):
    from cognet.cli.task_script import run

    with pytest.raises(SystemExit) as exc:
        run("copy", ["--task", "add"])
    assert exc.value.code == 2 and "do not pass --task" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        run("add", ["--set", "task.encoding=unary"])
    assert exc.value.code == 2 and "task.encoding must be one of" in capsys.readouterr().err


def test_python_m_task_script_trains(tmp_path):
    sets = ["network.n_rec=12", "train.iterations=4", "train.batch_size=8", "train.eval_every=2",
            "train.eval_trials=16", "train.checkpoint_every=0"]
    args = [sys.executable, "-m", "tasks.store_recall", "--out", str(tmp_path / "run"), "--json", "--quiet"]
    for s in sets:
        args += ["--set", s]
    r = subprocess.run(args, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["task"] == "store-recall" and summary["iterations"] == 4 and summary["n_rec"] == 12
    assert (tmp_path / "run" / "model.safetensors").exists()


# -- task recommendations ----------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_recommended_settings_are_valid_config_keys(name):
    from cognet.training.config import build_config

    cls = tasks.get_task_class(name)
    for rule in ("bptt", "eprop-random"):
        cfg = build_config(name, rule=rule)  # raises ConfigError on a misspelt key or bad value
        rec = {**cls.recommended, **cls.recommended_for_rule.get(rule, {})}
        for key, value in rec.items():
            section, field_name = key.split(".")
            assert getattr(getattr(cfg, section), field_name) == value, key


def test_eprop_recommendations_cover_the_symbolic_tasks_and_only_eprop():
    """Issue 20: each e-prop rule gets the wider network and longer budget on the twelve smaller
    symbolic tasks; on dup-rev 1.5 x BPTT's budget with slow, strong adaptation on twice BPTT's
    width (both rules); BPTT's settings and the digits' stay as they were."""
    from cognet.training.config import build_config
    from tasks.base import EPROP_RULES, EPROP_SETTINGS

    assert set(EPROP_RULES) == {"eprop-symmetric", "eprop-random"}
    small = [t for t in tasks.suite_tasks() if t != "dup-rev"]
    assert len(small) == 12
    for name in small:
        bptt = build_config(name, rule="bptt")
        for rule in EPROP_RULES:
            cfg = build_config(name, rule=rule)
            assert cfg.network.n_rec == EPROP_SETTINGS["network.n_rec"] > bptt.network.n_rec, name
            assert cfg.train.iterations >= 2 * bptt.train.iterations and cfg.train.keep_best, name
            assert cfg.train.rate_target_hz == bptt.train.rate_target_hz  # the same firing-rate target
        assert build_config(name, rule="eprop-adaptive").network.n_rec == bptt.network.n_rec
    bptt = build_config("dup-rev")
    for rule in EPROP_RULES:
        cfg = build_config("dup-rev", rule=rule)
        assert (cfg.train.iterations, cfg.train.keep_best) == (30000, True) and bptt.train.iterations == 20000
        assert (cfg.train.rate_target_hz, cfg.train.lr, cfg.network.alif_fraction) == \
            (bptt.train.rate_target_hz, bptt.train.lr, bptt.network.alif_fraction)
    sym, rnd = build_config("dup-rev", rule="eprop-symmetric"), build_config("dup-rev", rule="eprop-random")
    # stronger adaptation, the same rate target; random feedback the strongest
    assert (sym.network.beta, rnd.network.beta) == (2 * bptt.network.beta, 3 * bptt.network.beta) == (2.0, 3.0)
    assert sym.network.n_rec == rnd.network.n_rec == 2 * bptt.network.n_rec == 1024
    # random feedback averages its noisier learning signal over twice the batch
    assert (bptt.train.batch_size, sym.train.batch_size, rnd.train.batch_size) == (64, 64, 128)
    for cfg in (sym, rnd):  # slow adaptation: e-prop credits a neuron's own adaptation exactly
        assert (cfg.network.tau_adapt_ms, cfg.network.tau_adapt_max_ms) == (100.0, 2000.0) != \
            (bptt.network.tau_adapt_ms, bptt.network.tau_adapt_max_ms)
    assert build_config("dup-rev", rule="eprop-adaptive").network.n_rec == bptt.network.n_rec
    assert build_config("digits", rule="eprop-random").network.n_rec == build_config("digits").network.n_rec
    # the user's --set still wins
    assert build_config("add", rule="eprop-random", sets=["network.n_rec=64"]).network.n_rec == 64


def test_eprop_recommended_layers_settings_overrides_and_one_rule():
    from tasks.base import EPROP_RULES, EPROP_SETTINGS, eprop_recommended

    rec = eprop_recommended({"train.iterations": 9, "network.beta": 2.0},
                            per_rule={"eprop-random": {"network.beta": 3.0}})
    assert set(rec) == set(EPROP_RULES)
    assert rec["eprop-symmetric"] == {**EPROP_SETTINGS, "train.iterations": 9, "network.beta": 2.0}
    assert rec["eprop-random"] == {**EPROP_SETTINGS, "train.iterations": 9, "network.beta": 3.0}
    assert eprop_recommended() == {r: EPROP_SETTINGS for r in EPROP_RULES}
    with pytest.raises(ValueError, match="bptt"):  # only e-prop rules get e-prop settings
        eprop_recommended(per_rule={"bptt": {"network.beta": 3.0}})


def test_recommendations_yield_to_the_config_file_and_set(tmp_path):
    from cognet.training.config import build_config

    cfg = build_config("dup-rev")
    assert (cfg.network.n_rec, cfg.network.beta, cfg.train.iterations) == (512, 1.0, 20000)
    f = tmp_path / "c.yaml"
    f.write_text("network:\n  n_rec: 64\n")
    cfg = build_config("dup-rev", config_file=str(f), sets=["network.beta=0.5"])
    assert (cfg.network.n_rec, cfg.network.beta, cfg.train.iterations) == (64, 0.5, 20000)
    assert build_config("add").network.n_rec == 100  # another task keeps the defaults
    # a rule-specific recommendation applies to that rule only
    assert build_config("evidence", rule="bptt").surrogate.peak == 0.1
    assert build_config("evidence", rule="eprop-random").surrogate.peak == 0.3
