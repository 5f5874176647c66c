"""Third-party tasks and rules: --plugin, COGNET_PLUGINS, entry points, and plugins.json
(a run made with a plug-in is evaluated, verified and analysed in a fresh shell)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import rules
import tasks

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = Path(__file__).resolve().parent / "plugins"
TINY = ["--set", "network.n_rec=16", "--set", "train.iterations=4", "--set", "train.batch_size=8",
        "--set", "train.eval_every=2", "--set", "train.eval_trials=16"]


@pytest.fixture
def registries(monkeypatch):
    """Keep the plug-ins a test registers out of the other tests."""
    monkeypatch.setattr(tasks, "TASKS", dict(tasks.TASKS))
    monkeypatch.setattr(rules, "RULES", dict(rules.RULES))
    monkeypatch.syspath_prepend(str(PLUGINS))
    for mod in ("cognet_toy_plugin", "cognet_toy_ep"):
        monkeypatch.delitem(sys.modules, mod, raising=False)
    monkeypatch.delenv("COGNET_PLUGINS", raising=False)


def cognet(*args, pythonpath=(), env_extra=None, timeout=300):
    env = {k: v for k, v in os.environ.items() if k != "COGNET_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *map(str, pythonpath)])
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "cognet", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_plugin_task_and_rule_train_through_the_api(registries, tmp_path):
    from cognet.training import Trainer, build_config
    from cognet.training.plugins import ensure_loaded

    ensure_loaded(["cognet_toy_plugin"])
    cfg = build_config(task="toy-and", rule="bptt-l2", sets=["network.n_rec=16", "train.iterations=3",
                                                              "train.batch_size=8", "train.eval_every=3",
                                                              "train.eval_trials=16"])
    summary = Trainer(cfg, out_dir=tmp_path / "run", progress=False).run()
    assert summary["task"] == "toy-and" and summary["rule"] == "bptt-l2"
    rec = json.loads((tmp_path / "run" / "plugins.json").read_text())
    assert rec["modules"] == {"task": "cognet_toy_plugin", "rule": "cognet_toy_plugin"}


def test_builtin_runs_record_no_plugins(tmp_path, tiny_sets):
    from cognet.training import Trainer, build_config

    Trainer(build_config(task="xor", sets=tiny_sets), out_dir=tmp_path / "run", progress=False).run()
    assert not (tmp_path / "run" / "plugins.json").exists()


def test_plugin_run_evaluates_verifies_and_analyses_in_a_fresh_shell(tmp_path):
    run = tmp_path / "run"
    res = cognet("train", "--plugin", "cognet_toy_plugin", "--task", "toy-and", "--rule", "bptt-l2", *TINY,
                 "--out", str(run), "--quiet", pythonpath=[PLUGINS])
    assert res.returncode == 0, res.stderr
    # fresh shells: no --plugin, no COGNET_PLUGINS; the run directory says where its task and rule live
    res = cognet("eval", str(run), "--trials", "16", "--json", pythonpath=[PLUGINS])
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["task"] == "toy-and"
    res = cognet("verify", str(run), "--trials", "4", "--target", "numpy", "--json", pythonpath=[PLUGINS])
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["identical_trial_fraction"] == 1.0
    res = cognet("analyze", str(run), "--trials", "4", "--json", pythonpath=[PLUGINS])
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["task"] == "toy-and"
    # without the plug-in on the path: a clear error, no traceback
    res = cognet("eval", str(run), pythonpath=[])
    assert res.returncode == 2
    assert res.stderr.startswith("Error:") and "cognet_toy_plugin" in res.stderr and "Traceback" not in res.stderr


def test_plugins_from_the_environment_and_bad_plugins(tmp_path):
    res = cognet("tasks", pythonpath=[PLUGINS], env_extra={"COGNET_PLUGINS": "cognet_toy_plugin"})
    assert res.returncode == 0 and "toy-and" in res.stdout
    res = cognet("rules", pythonpath=[PLUGINS], env_extra={"COGNET_PLUGINS": "cognet_toy_plugin"})
    assert "bptt-l2" in res.stdout
    res = cognet("train", "--plugin", "no_such_module_xyz", "--task", "add")
    assert res.returncode == 2 and "Error: plug-in module 'no_such_module_xyz'" in res.stderr
    res = cognet("train", "--task", "toy-and", *TINY, "--out", str(tmp_path / "r"))
    assert res.returncode == 2 and "unknown task 'toy-and'" in res.stderr


def test_entry_point_plugins_are_found(tmp_path):
    # a distribution's metadata on the path, as `pip install` would leave it
    dist = tmp_path / "cognet_toy_ep-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: cognet-toy-ep\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[cognet.tasks]\ntoy-or = cognet_toy_ep:OrTask\n\n"
                                           "[cognet.rules]\nbptt-l2 = cognet_toy_plugin:BpttL2\n")
    res = cognet("tasks", pythonpath=[tmp_path, PLUGINS])
    assert res.returncode == 0, res.stderr
    assert "toy-or" in res.stdout
    run = tmp_path / "run"
    res = cognet("train", "--task", "toy-or", *TINY, "--out", str(run), "--quiet", pythonpath=[tmp_path, PLUGINS])
    assert res.returncode == 0, res.stderr
    assert json.loads((run / "plugins.json").read_text())["modules"] == {"task": "cognet_toy_ep"}
    # a broken entry point is named
    (dist / "entry_points.txt").write_text("[cognet.tasks]\nbroken = cognet_toy_ep:NoSuchClass\n")
    res = cognet("tasks", pythonpath=[tmp_path, PLUGINS])
    assert res.returncode == 2 and "entry point broken = cognet_toy_ep:NoSuchClass" in res.stderr


def test_python_m_cognet_ignores_folders_named_like_its_packages(tmp_path):
    """An experiment output folder called `rules` (or `tasks`, `analysis`) in the current
    directory must not shadow cognet's packages under `python -m cognet`."""
    for name in ("rules", "tasks", "analysis"):
        (tmp_path / name).mkdir()
    env = {k: v for k, v in os.environ.items() if k != "COGNET_PLUGINS"}
    env["PYTHONPATH"] = str(ROOT)
    res = subprocess.run([sys.executable, "-m", "cognet", "rules"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "eprop-random" in res.stdout


def test_plugin_module_in_the_current_directory_is_found(tmp_path):
    """`--plugin my_plugin` finds my_plugin.py in the current directory (python -m cognet takes
    the current directory off the path against shadowing; the loader looks there last)."""
    import shutil

    shutil.copytree(PLUGINS / "cognet_toy_plugin", tmp_path / "my_plugin", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "rules").mkdir()  # and a folder named like a cognet package still shadows nothing
    env = {k: v for k, v in os.environ.items() if k != "COGNET_PLUGINS"}
    env["PYTHONPATH"] = str(ROOT)
    res = subprocess.run([sys.executable, "-m", "cognet", "--plugin", "my_plugin", "tasks"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    if res.returncode == 2 and "no such option" in res.stderr.lower():
        res = subprocess.run([sys.executable, "-m", "cognet", "tasks", "--plugin", "my_plugin"], cwd=tmp_path,
                             env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    res2 = subprocess.run([sys.executable, "-m", "cognet", "tasks"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert res2.returncode == 0 and set(res.stdout.split("\n")) > set(res2.stdout.split("\n")), (res.stdout, res2.stdout)
    res3 = subprocess.run([sys.executable, "-m", "cognet", "rules"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert res3.returncode == 0 and "eprop-random" in res3.stdout, res3.stderr
