"""Sphinx configuration of the cognet documentation site.

Build (from the repository root, with the ``docs`` extra installed)::

    python3 -m sphinx -W --keep-going -b html docs docs/_build/html

Notebooks (``docs/tutorials/*.md``, MyST-markdown notebooks) are rendered without being
executed (``nb_execution_mode = "off"``) so that the build stays fast; the slow test
``tests/test_docs.py::test_tutorial_notebooks_run`` executes them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# document the source tree next to this file (not another installed copy of cognet)
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MPLBACKEND", "Agg")

project = "cognet"
author = "cognet developers"
copyright = "2026, cognet developers"
try:
    from cognet import __version__ as release
except Exception:  # pragma: no cover - the API pages would fail loudly anyway
    release = "0.1.0"
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "myst_nb",
    "sphinx_click",
    "sphinxcontrib.mermaid",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"
# results/duprev-eprop-random-bs128: raw run records (configs, summaries, Brian2 checks), read on GitHub
exclude_patterns = ["_build", "README.md", "**/.ipynb_checkpoints", "jupyter_execute",
                    "results/duprev-eprop-random-bs128"]

# -- MyST / notebooks -------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
# ```mermaid fences (docs/architecture.md) become diagrams here and on GitHub alike
myst_fence_as_directive = ["mermaid"]
nb_execution_mode = "off"  # CI renders the notebooks; tests/test_docs.py (slow) executes them
nb_merge_streams = True

# -- autodoc / napoleon -----------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_default_options = {"members": True, "show-inheritance": True, "ignore-module-all": True}
autodoc_preserve_defaults = True
# torch base classes (nn.Module, autograd.Function) would lend their docstrings to undocumented overrides
autodoc_inherit_docstrings = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# ``Attributes:`` sections become fields, not attribute entries (the dataclass fields are
# documented by autodoc already; two entries would be duplicate object descriptions)
napoleon_use_ivar = True

# -- HTML -------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"cognet {release}"
html_static_path: list = []
