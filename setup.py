"""Installs the repository root as the package `lottery_ticket`."""

import os

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


def _requirements():
    with open(os.path.join(HERE, "requirements.txt"), encoding="utf-8") as f:
        return [line.split("#")[0].strip() for line in f if line.split("#")[0].strip()]


# The root directory is the package itself, so imports read
# `from lottery_ticket.foundations import pruning` and no top-level `datasets`
# package is installed to collide with other libraries.
# docs/ (the Sphinx site and its extensions) is never installed, even if it grows an
# __init__.py.
_SUBPACKAGES = find_packages(where=HERE, exclude=["tests", "tests.*", "bench", "bench.*",
                                                  "build", "build.*", "docs", "docs.*"])


_RAY = ["ray>=2.9"]
_SLURM = ["submitit>=1.5"]
# The documentation site (docs/): Sphinx with MyST Markdown and the furo theme.
_DOCS = ["sphinx>=7,<10", "myst-parser>=3,<6", "furo>=2024.1,<2027"]


class _BuildPy(build_py):
    """Leaves this setup.py out of the installed package."""

    def find_package_modules(self, package, package_dir):
        modules = super().find_package_modules(package, package_dir)
        return [m for m in modules if not (package == "lottery_ticket" and m[1] == "setup")]


# In an editable install this file is importable as `lottery_ticket.setup`; only a
# build (which runs it as __main__) may call setup().
if __name__ == "__main__":
    setup(
        name="lottery_ticket",
        cmdclass={"build_py": _BuildPy},
        version="0.1.0",
        description="Lottery ticket hypothesis experiments in TensorFlow 2.",
        long_description=open(os.path.join(HERE, "README.md"), encoding="utf-8").read(),
        long_description_content_type="text/markdown",
        python_requires=">=3.10",
        package_dir={"lottery_ticket": "."},
        packages=["lottery_ticket"] + ["lottery_ticket." + p for p in _SUBPACKAGES],
        install_requires=_requirements(),
        extras_require={
            # Cluster engines for the argfile runner's --backend, imported only when asked for.
            "ray": _RAY,
            "slurm": _SLURM,
            "docs": _DOCS,
            # The tests run notebooks in a real Jupyter kernel, batches on real Ray and
            # Slurm, and build the documentation site, so they need every extra; they run
            # in one pytest-xdist worker per core.
            "test": ["pytest>=7", "pytest-xdist>=3.5", "nbclient>=0.9", "nbformat>=5.9",
                     "ipykernel>=6.25"] + _RAY + _SLURM + _DOCS,
        },
    )
