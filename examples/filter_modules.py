"""A callback that keeps only the main module and drops every other module and its memory.

    python examples/filter_modules.py PID
"""

import sys

import snapshotdump
from snapshotdump import CallbackEvent, CallbackType


def main(pid: int) -> None:
    with snapshotdump.capture(pid) as snap:
        main_image = snap.process.image_path
        modules = [m for m in snap.regions() if m.mapped_file == main_image]
        low = min(m.base for m in modules) if modules else 0
        high = max(m.base + m.size for m in modules) if modules else 0

        def keep_main_module(event: CallbackEvent) -> bool:
            if event.type is CallbackType.MODULE:
                return event.module_path == main_image
            if event.type is CallbackType.INCLUDE_VM_REGION:
                # Keep the main module's own memory (and nothing else besides the stacks).
                return event.memory_base is not None and low <= event.memory_base < high
            return True

        result = snap.write_dump(f"filtered_{pid}.dmp", snapshotdump.MiniDumpType.WITH_DATA_SEGS,
                                 callback=keep_main_module, overwrite=True)
    print(f"wrote {result.path}: {result.modules} module(s), {result.threads} threads, "
          f"{result.size} bytes")


if __name__ == "__main__":
    main(int(sys.argv[1]))
