"""Sphinx configuration for the flask-vault docs (``make docs``; warnings are errors there)."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))  # vault_settings: the generated settings table
sys.path.insert(0, str(DOCS.parent))  # the package itself when it is not installed

# Project --------------------------------------------------------------

project = "flask-vault"
version = release = importlib.metadata.version("flask-vault-secrets")

# General --------------------------------------------------------------

default_role = "code"
smartquotes = False  # keep "--reveal" and quotes in command help as typed
extensions = [
    "sphinx.ext.autodoc",
    "myst_parser",
    "sphinx_click",
    "vault_settings",
]
exclude_patterns = ["_build"]
# Pygments has no cron lexer and its HCL lexer stumbles on Vault's stanzas; the blocks are
# still shown, unhighlighted. Every other warning fails `make docs`.
suppress_warnings = ["misc.highlighting_failure"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_preserve_defaults = True
autodoc_default_options = {"show-inheritance": True}
myst_enable_extensions = ["fieldlist", "deflist"]
myst_heading_anchors = 3  # links such as auth.md#ci-example resolve, as they do on GitHub

# HTML -----------------------------------------------------------------

html_theme = "furo"
html_title = f"flask-vault {release}"
html_copy_source = False
html_show_copyright = False
html_use_index = False
html_domain_indices = False
