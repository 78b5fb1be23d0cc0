"""The packages are found, never listed: three source roots (pyproject.toml holds everything else)."""

from setuptools import find_namespace_packages, setup

ROOTS = {"obsflow": "shared/obsflow", "obsflow_functions": "functions",
         "obsflow_tasks": "containers/pipeline/obsflow_tasks"}

# Every directory under a root is a package (data directories too, so their files are package data), but not
# caches or directories whose names are no module names (a pipeline's parameter files).
packages = [package for root, path in ROOTS.items()
            for package in [root, *(f"{root}.{found}" for found in find_namespace_packages(path, exclude=["*__pycache__*"]))]
            if all(part.isidentifier() for part in package.split("."))]

setup(packages=packages, package_dir=ROOTS)
