"""Sphinx configuration of the sb3_rtx documentation (built in CI with -W: warnings fail)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sb3_rtx  # noqa: E402

project = "sb3_rtx"
author = "sb3_rtx developers"
copyright = "2026, sb3_rtx developers"
release = sb3_rtx.__version__ if hasattr(sb3_rtx, "__version__") else "0.1.0"
version = release

extensions = [
    "myst_parser",  # pages in Markdown (MyST), so README-style text and the results tables fit as they are
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.mathjax",
    "sphinx.ext.intersphinx",
]
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "history"]  # snapshots included by the history page, not pages

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
# the docstrings use Sphinx's :param: fields; napoleon also reads Google-style ones
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# Intersphinx needs the other projects' inventories, which are downloaded at build time. CI and the
# project's machines have no internet beyond the package registries, so the mapping is only set
# when asked for (SB3_RTX_DOCS_INTERSPHINX=1) or on Read the Docs (which sets READTHEDOCS=True);
# otherwise no link is attempted.
intersphinx_mapping: dict = {}
if os.environ.get("SB3_RTX_DOCS_INTERSPHINX") == "1" or os.environ.get("READTHEDOCS") == "True":
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "sb3": ("https://stable-baselines3.readthedocs.io/en/master/", None),
        "sb3_contrib": ("https://sb3-contrib.readthedocs.io/en/master/", None),
        "gymnasium": ("https://gymnasium.farama.org/", None),
        "torch": ("https://docs.pytorch.org/docs/stable/", None),
        "optuna": ("https://optuna.readthedocs.io/en/stable/", None),
    }
# references to other projects' objects cannot resolve without their inventories
nitpicky = False

html_theme = "sphinx_rtd_theme"
html_title = f"sb3_rtx {release}"
html_static_path: list[str] = []
