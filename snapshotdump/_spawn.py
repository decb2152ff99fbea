"""Python subprocesses of our own (the tracer helper, the demo target), started isolated.

``python -m snapshotdump...`` would put the caller's working folder first on
``sys.path``: a ``snapshotdump/`` folder there (a checkout, or one planted in
/tmp) would run in place of the installed package, as whoever calls us, root
included.  So the child runs with ``-I`` (no working folder, no PYTHON*
variables, no user site-packages), and this very package is loaded from its
file path, whatever ``sys.path`` holds.
"""

from __future__ import annotations

import os
import sys

# Runs in the child: bind the name "snapshotdump" to the package at argv[1], then run a module.
_BOOTSTRAP = """\
import importlib.util, runpy, sys
root, module = sys.argv[1], sys.argv[2]
spec = importlib.util.spec_from_file_location(
    "snapshotdump", root + "/__init__.py", submodule_search_locations=[root])
package = importlib.util.module_from_spec(spec)
sys.modules["snapshotdump"] = package
spec.loader.exec_module(package)
sys.argv = [module, *sys.argv[3:]]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def python_argv(module: str, *args: str) -> list[str]:
    """The argv that runs ``python -m MODULE ARGS`` on this package, isolated from the caller."""
    return [sys.executable, "-I", "-c", _BOOTSTRAP, PACKAGE_DIR, module, *args]


def same_package(expected_dir: str, expected_version: str) -> str | None:
    """In the child: why this is not the parent's package (folder or version), or None."""
    from ._version import __version__

    here = os.path.realpath(PACKAGE_DIR)
    if here != os.path.realpath(expected_dir):
        return f"it runs snapshotdump from {here}, not from {expected_dir}"
    if __version__ != expected_version:
        return (f"snapshotdump in {here} is version {__version__}, the caller runs "
                f"{expected_version} (was it upgraded meanwhile?)")
    return None
