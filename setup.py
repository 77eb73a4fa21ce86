"""A shim for tools that still look for setup.py: the project is described
in pyproject.toml, which `pip install -e .` reads on its own."""

from setuptools import setup

setup()
