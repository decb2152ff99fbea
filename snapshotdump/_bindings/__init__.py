"""Access to the generated cffi modules (see build_cffi.py).

Nothing here opens a library: the Windows and Linux layers do that lazily, on
first use, so ``import snapshotdump`` works on every OS.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

from .digest import CDEFS as _CDEFS
from .digest import cdefs_digest


@functools.cache
def load(name: str) -> Any:
    """Return the FFI object of the generated module ``_<name>_ffi``, checked for staleness."""
    module_name = f"{__name__}._{name}_ffi"
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(
            f"the generated binding {module_name} is missing: install the package "
            "(pip install .) or generate it in the source tree (python build_cffi.py)"
        ) from exc
    ffi = module.ffi
    expected = f"CDEFS_DIGEST_{cdefs_digest()}"
    if expected not in ffi.list_types()[0]:
        raise ImportError(
            f"the generated binding {module_name} was built from other declarations than "
            f"{_CDEFS}: run `python build_cffi.py` again (or reinstall the package)"
        )
    return ffi
