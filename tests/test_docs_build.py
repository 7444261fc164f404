"""The documentation site builds with every warning an error, as CI builds it.

`python -m sphinx -W` fails on a broken cross-reference, a docstring autodoc
cannot read, a page left out of every toctree, or a flag page the extension
cannot generate (docs/_ext/flag_reference.py imports every command), so a
page cannot go stale without this test failing.
"""

import os
import re
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(REPO, "docs")


def _sphinx(source: str, output: str, builder: str = "html") -> subprocess.CompletedProcess:
    """Builds `source` into `output` with -W --keep-going (autodoc imports the
    lottery_ticket this interpreter imports: the install, or PYTHONPATH's)."""
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", builder,
         "-d", os.path.join(output, ".doctrees"), source, output],
        capture_output=True, text=True, timeout=600, check=False)


def _warnings(result: subprocess.CompletedProcess) -> list:
    """Sphinx's warning and error lines (not TensorFlow's start-up noise)."""
    # Sphinx writes "path:line: WARNING: text" or "WARNING: text"; absl's
    # "WARNING:absl:..." has no space after the colon.
    return [line for line in (result.stdout + result.stderr).splitlines()
            if re.search(r"(^|: )(WARNING|ERROR): ", line)
            and "absl::InitializeLog" not in line]


def _copy_docs(tmp_path) -> str:
    """docs/ copied without build output or generated pages: the build writes its
    generated flag pages into its source folder, which must not be the checkout (it
    may be read-only, and generated pages there would change what other tests read)."""
    source = tmp_path / "docs"
    shutil.copytree(DOCS, source, ignore=shutil.ignore_patterns("_build", "flags"))
    return str(source)


def test_the_site_builds_without_a_warning(tmp_path):
    result = _sphinx(_copy_docs(tmp_path), str(tmp_path / "html"))
    assert result.returncode == 0, (
        "the documentation build failed (-W: every warning is an error):\n"
        + "\n".join(_warnings(result) or (result.stdout + result.stderr).splitlines()[-40:]))
    for page in ("index.html", "reference/index.html", "reference/flags/index.html",
                 "reference/flags/mnist_fc.html", "reference/flags/config.html",
                 "reference/layout.html", "reference/done-json.html",
                 "reference/exit-statuses.html"):
        assert (tmp_path / "html" / page).is_file(), page
    index = (tmp_path / "html" / "reference" / "index.html").read_text()
    assert 'href="flags/mnist_fc.html#oneshot"' in index  # reference -> a runner's flags
    oneshot = (tmp_path / "html" / "reference" / "flags" / "mnist_fc.html").read_text()
    assert "python -m lottery_ticket.mnist_fc.runners.oneshot" in oneshot
    assert "--lottery_name" in oneshot


def test_a_page_outside_every_toctree_fails_the_build(tmp_path):
    # The guarantee behind "every page is reachable": -W turns Sphinx's warning
    # about a page no toctree lists into a failed build.
    source = _copy_docs(tmp_path)
    with open(os.path.join(source, "forgotten.md"), "w", encoding="utf-8") as f:
        f.write("# Forgotten\n\nNo toctree lists this page.\n")
    result = _sphinx(source, str(tmp_path / "out"), builder="dummy")
    assert result.returncode != 0
    warnings = _warnings(result)
    assert any("forgotten" in line and "toctree" in line for line in warnings), warnings
    assert len(warnings) == 1, warnings
