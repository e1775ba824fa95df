"""Packages: ``avloc`` and the command line, whose modules live in the top-level ``cli/`` folder
and install under the import name ``avloc_cli`` (a name no other distribution claims; the
``avloc`` script is ``avloc_cli.main:main``). Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["avloc", "avloc.*"]), "avloc_cli"],
    package_dir={"avloc_cli": "cli"},
)
