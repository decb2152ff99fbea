"""The digest of the declaration files, compiled into the generated modules.

Standalone on purpose: build_cffi.py loads this file by path at build time, before the
package can be imported.
"""

from __future__ import annotations

import hashlib
import pathlib

CDEFS = pathlib.Path(__file__).resolve().parent.parent / "_cdefs"


def cdefs_digest(folder: pathlib.Path = CDEFS) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.h")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
