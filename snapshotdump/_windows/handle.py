"""ProcessHandle, apart from the backend: ``snapshotdump.ProcessHandle`` loads no DLL."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ProcessHandle:
    """An open Windows process handle, for ``capture()`` (a plain int is a pid).

    The handle needs PROCESS_QUERY_INFORMATION and PROCESS_VM_READ (for the dump), plus
    PROCESS_DUP_HANDLE and PROCESS_CREATE_PROCESS for a PSS snapshot with handles and
    a VA clone.  The library never closes it.
    """

    value: int
