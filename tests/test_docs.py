"""The documentation site: a warning-free Sphinx build and tutorial notebooks that run.

* ``test_docs_build_warning_free`` runs ``sphinx -W --keep-going -b html`` on ``docs/``
  (notebooks rendered, not executed) into a temporary folder and fails on any warning;
  it is ``slow`` (a fresh build with the API reference takes 20-60 s here), so CI runs it
  from ``.ci/run``.
* ``test_tutorial_notebooks_run`` executes each MyST-markdown notebook under
  ``docs/tutorials/`` with nbclient in a fresh temporary working directory and fails on
  the first cell that raises (``slow``: they train small networks, a few minutes in all).

Both need the ``docs`` extra (``pip install -e ".[docs]"``) and are skipped without it.
The fast test here checks what needs no extra: every page named in a toctree or linked
from another page exists, and every module named in the API pages imports.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TUTORIALS = sorted((DOCS / "tutorials").glob("[0-9][0-9]-*.md"))


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.pop("MPLBACKEND", None)  # the kernel draws figures with its inline backend
    return env


def _toctree_entries(text: str) -> list:
    entries = []
    for block in re.findall(r"```\{toctree\}(.*?)```", text, flags=re.S):
        entries += [ln.strip() for ln in block.splitlines() if ln.strip() and not ln.strip().startswith(":")]
    for block in re.findall(r"\.\. toctree::\n((?:[ \t]+.*\n|\n)+)", text):
        entries += [ln.strip() for ln in block.splitlines() if ln.strip() and not ln.strip().startswith(":")]
    return entries


def test_docs_pages_and_api_modules_exist():
    pages = [DOCS / "index.md", DOCS / "api" / "index.rst"]
    seen = set()
    while pages:
        page = pages.pop()
        assert page.exists(), f"{page} is named in a toctree but does not exist"
        if page in seen:
            continue
        seen.add(page)
        for entry in _toctree_entries(page.read_text()):
            target = (page.parent / entry)
            found = [p for p in (target.with_suffix(".md"), target.with_suffix(".rst")) if p.exists()]
            assert found, f"toctree entry {entry!r} in {page} names no page"
            pages.extend(found)
    assert {p.name for p in TUTORIALS} <= {p.name for p in seen}, "a tutorial is missing from the toctree"
    assert len(TUTORIALS) >= 3
    modules = []
    for rst in (DOCS / "api").glob("*.rst"):
        modules += re.findall(r"^\.\. automodule:: (\S+)", rst.read_text(), flags=re.M)
    assert "cognet.core.functional" in modules and "rules.eprop" in modules
    for name in modules:
        importlib.import_module(name)  # an API page naming a module that does not exist fails here


@pytest.mark.slow
def test_docs_build_warning_free(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_nb")
    pytest.importorskip("furo")
    pytest.importorskip("sphinx_click")
    pytest.importorskip("sphinxcontrib.mermaid")
    out = tmp_path / "html"
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-q", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(DOCS), str(out)],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"sphinx failed (rc {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
    import html as html_lib

    page = (out / "api" / "core.html").read_text()
    text = html_lib.unescape(re.sub(r"<[^>]+>", "", page))
    # the update equations of cognet.core.functional render, as a literal block
    assert "v[t]   = alpha v[t-1] + I[t] + W_rec z[t-1] - v_th z[t-1]" in text
    assert "class NeuronParams" in text or "NeuronParams(" in text
    assert (out / "tutorials" / "01-train-verify-raster.html").exists()
    assert "cognet train" in (out / "cli.html").read_text()


def execute_notebook(path: Path, workdir: Path, timeout: int = 600):
    """Execute the MyST-markdown notebook ``path`` in ``workdir``; return the executed notebook.

    Raises ``nbclient.exceptions.CellExecutionError`` on the first cell that fails."""
    from myst_nb.core.read import read_myst_markdown_notebook
    from nbclient import NotebookClient

    nb = read_myst_markdown_notebook(path.read_text())
    old = dict(os.environ)
    os.environ.update(_env())  # the kernel inherits this process's environment
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(workdir)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    return nb


@pytest.mark.slow
@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_notebooks_run(path, tmp_path):
    pytest.importorskip("myst_nb")
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = execute_notebook(path, tmp_path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.get("execution_count") for c in code), "a code cell did not run"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    if "plt.show()" in path.read_text():
        images = [o for c in code for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
        assert images, "the notebook draws figures but none came out"
