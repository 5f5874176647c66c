"""The layering contract (docs/architecture.md) is checked, not hoped for.

* import-linter's layers contract in pyproject.toml: core <- tasks, rules <- training <-
  brian | analysis <- interchange <- experiments <- cli (lazy imports inside functions count);
* no file-level import circle anywhere (strongly connected components of grimp's graph);
* only ``cognet.cli`` parses arguments or prints;
* the ``python -m tasks.<name>`` script modules, the one allowed exception to the layers,
  hold nothing but a docstring and their ``__main__`` block.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cognet", "tasks", "rules", "analysis")

grimp = pytest.importorskip("grimp")
pytest.importorskip("importlinter")


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True, no_logo=True))"
    return subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=120)


def test_layers_contract_is_kept():
    res = _lint(ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "KEPT" in res.stdout and "BROKEN" not in res.stdout


@pytest.mark.parametrize("probe, culprit", [
    ("cognet/core/_probe.py", "from cognet.training import trainer\n"),
    ("tasks/_probe.py", "def f():\n    from rules import bptt  # a lazy import counts too\n"),
    ("analysis/_probe.py", "import cognet.cli.main\n"),
])
def test_an_upward_import_breaks_the_contract(tmp_path, probe, culprit):
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / probe).write_text(culprit)
    res = _lint(tmp_path)
    assert res.returncode != 0
    assert "BROKEN" in res.stdout
    assert probe[:-3].replace("/", ".") in res.stdout  # the offending module is named


def import_cycles(graph) -> list:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = [0]
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_cycle_finder_finds_a_planted_cycle():
    g = grimp.ImportGraph()
    for a, b in [("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d"), ("p.e", "p.d")]:
        g.add_import(importer=a, imported=b)
    assert import_cycles(g) == [["p.a", "p.b", "p.c"]]


def test_no_import_circle_anywhere():
    sys.path.insert(0, str(ROOT))
    graph = grimp.build_graph(*PACKAGES)
    assert import_cycles(graph) == []


def _py_files(pkg: str):
    return [p for p in (ROOT / pkg).rglob("*.py") if "__pycache__" not in p.parts]


def _prints_or_parses(tree: ast.AST) -> list:
    """Lines that call print(), write to sys.stdout/stderr, or import argparse/click (code, not strings)."""
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id == "print":
                hits.append(node.lineno)
            if (isinstance(f, ast.Attribute) and f.attr == "write" and isinstance(f.value, ast.Attribute)
                    and f.value.attr in ("stdout", "stderr") and isinstance(f.value.value, ast.Name)
                    and f.value.value.id == "sys"):
                hits.append(node.lineno)
        elif isinstance(node, ast.Import):
            hits += [node.lineno for a in node.names if a.name.split(".")[0] in ("argparse", "click")]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("argparse", "click"):
            hits.append(node.lineno)
    return hits


def test_the_print_checker_sees_code_not_strings():
    tree = ast.parse('import click\nx = "print(1)"\ndef f():\n    print(2)\n    import sys; sys.stderr.write("e")\n')
    assert sorted(_prints_or_parses(tree)) == [1, 4, 5]


def test_only_the_cli_prints_or_parses_arguments():
    offenders = []
    for pkg in PACKAGES:
        for p in _py_files(pkg):
            rel = p.relative_to(ROOT).as_posix()
            if rel.startswith("cognet/cli/"):
                continue
            offenders += [f"{rel}:{line}" for line in _prints_or_parses(ast.parse(p.read_text()))]
    assert offenders == []


def _is_script_module(tree: ast.Module) -> bool:
    body = list(tree.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    if len(body) != 1 or not isinstance(body[0], ast.If):
        return False
    test = body[0].test
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and isinstance(test.comparators[0], ast.Constant) and test.comparators[0].value == "__main__")


def test_task_scripts_are_the_only_tasks_modules_that_reach_the_cli():
    import tomllib

    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]
    allowed = {line.split(" -> ")[0] for line in conf["ignore_imports"]}
    import tasks

    expected = {tasks.script_module(name) for name, cls in tasks.TASKS.items() if cls.__module__.startswith("tasks.")}
    assert allowed == expected  # one ignored import per task script, no more
    for mod in sorted(allowed):
        path = ROOT / (mod.replace(".", "/") + ".py")
        assert _is_script_module(ast.parse(path.read_text())), f"{path} must hold only a docstring and its __main__ block"


def test_the_old_flat_module_paths_still_import():
    import warnings

    from cognet._aliases import OLD_TO_NEW

    for old, new in OLD_TO_NEW.items():
        fresh = old not in sys.modules
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mod = __import__(old, fromlist=["_"])
        assert mod is sys.modules[new] and sys.modules[old] is mod  # one module object under both names
        if fresh:  # the first import in this process warns, naming the new path
            assert any(issubclass(w.category, DeprecationWarning) and new in str(w.message) for w in caught)
    from cognet.cli import train_cmd
    from cognet.experiments import EXPERIMENTS

    assert train_cmd.name == "train" and "surrogate-scale" in EXPERIMENTS


def test_readme_api_snippet_runs(tmp_path, monkeypatch):
    """The README's Python API block, executed as written (with a tiny budget)."""
    text = (ROOT / "README.md").read_text()
    block = text.split("### Python API", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    block = block.replace('sets=["network.n_rec=120"]',
                          'sets=["network.n_rec=20", "train.iterations=2", "train.eval_every=2", "train.eval_trials=8"]')
    assert "train.iterations=2" in block  # the snippet still has the line this test shrinks
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})
    assert (tmp_path / "runs" / "copy-api" / "summary.json").exists()
