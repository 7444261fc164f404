"""Sphinx configuration of the lottery_ticket documentation site.

Build it from the repository root with ``python -m sphinx -W -b html docs docs/_build/html``
(after ``python -m pip install -e ".[docs]"``); tests/test_docs_build.py does the same in
the test suite, so a page that no longer builds fails CI.

The build reads nothing from the network: no intersphinx, no remote images.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# Local extensions: flag_reference writes reference/flags/ from the commands' flags.
sys.path.insert(0, os.path.join(HERE, "_ext"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Defaults shown in the flag reference are a fresh machine's: the environment variables
# that move data and experiment roots (LOTTERY_TICKET_MNIST, ...) are ignored here.
for _name in [name for name in os.environ if name.startswith("LOTTERY_TICKET_")]:
    del os.environ[_name]

project = "lottery_ticket"
author = "the lottery_ticket authors"
copyright = "2026, the lottery_ticket authors"  # noqa: A001

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "flag_reference",
]

source_suffix = {".md": "markdown"}
# reference/flags/_*.md are generated fragments that pages include, not pages.
exclude_patterns = ["_build", "_ext", "README.md", "reference/flags/_*"]
myst_enable_extensions = ["colon_fence", "deflist"]
# Headings up to level 3 get anchors, so pages link to sections: [text](page.md#anchor).
myst_heading_anchors = 3

html_theme = "furo"
html_title = "lottery_ticket"

napoleon_google_docstring = True
napoleon_numpy_docstring = False
autodoc_typehints = "description"
# Types go into the documented parameters only, not a second list beside Attributes.
autodoc_typehints_description_target = "documented_params"
autodoc_member_order = "bysource"
# Every warning is an error in CI (-W); a reference to a missing page or object fails.
nitpicky = False
