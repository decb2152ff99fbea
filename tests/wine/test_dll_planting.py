"""DLL planting: a dbghelp.dll next to python.exe is never loaded (issue 12, defect 6).

The application's folder comes before System32 in the default DLL search order, so
a bare-name load of dbghelp.dll runs whatever sits next to python.exe (or a frozen
app).  tests/wine/planted_dbghelp.c is such a DLL: it leaves a marker and refuses to
load.  Wine prefers its builtin dbghelp, so scripts/wine-tests runs the suite with
WINEDLLOVERRIDES=dbghelp=n,b, Windows' own native-first order (Wine 8 reads that
variable when wine starts, not from a child's environment block).  The control run
proves that under it a bare-name load really does pick up the planted DLL: without
the override this test fails instead of proving nothing.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

from ..conftest import require

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent

CHILD = r"""
import os, sys
mode, out = sys.argv[1], sys.argv[2]
if mode == "bare":
    from snapshotdump._bindings import load
    try:
        load("windows").dlopen("dbghelp.dll")  # what the library did before: bare name
        print("loaded")
    except OSError as exc:
        print("refused", exc)
else:
    import snapshotdump
    with snapshotdump.capture(os.getpid(), live_fallback=True) as snap:
        result = snap.write_dump(out)
    print("dumped", result.size)
"""


def _copy(source: str, dest: str) -> None:
    # shutil.copyfile uses CopyFile2, which Wine 8 does not implement.
    pathlib.Path(dest).write_bytes(pathlib.Path(source).read_bytes())


def _run(app: pathlib.Path, mode: str, out: pathlib.Path) -> str:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)  # a regular install; the embeddable one reads its ._pth
    result = subprocess.run([str(app / pathlib.Path(sys.executable).name), "-c", CHILD, mode,
                             str(out)], stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def test_planted_dbghelp_next_to_python_exe_is_never_loaded(
        tmp_path: pathlib.Path, dumps: pathlib.Path) -> None:
    planted = os.environ.get("SNAPSHOTDUMP_PLANTED_DBGHELP", "")
    require(os.path.isfile(planted),
            "SNAPSHOTDUMP_PLANTED_DBGHELP must name a built tests/wine/planted_dbghelp.c "
            "(scripts/wine-tests builds it with mingw-w64)")
    # A copy of this interpreter, so that planting touches no shared folder.
    app = tmp_path / "app"
    shutil.copytree(pathlib.Path(sys.executable).parent, app,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), copy_function=_copy)
    _copy(planted, str(app / "dbghelp.dll"))
    marker = app / "dbghelp.dll.loaded"

    control = _run(app, "bare", tmp_path / "unused.dmp")
    assert marker.exists(), (
        f"the control run did not load the planted DLL ({control}): under Wine, run with "
        "WINEDLLOVERRIDES=dbghelp=n,b (scripts/wine-tests does)")
    assert control.startswith("refused")
    marker.unlink()

    dumped = _run(app, "library", dumps / "planted.dmp")
    assert not marker.exists(), "snapshotdump loaded the dbghelp.dll planted beside python.exe"
    assert dumped.startswith("dumped") and int(dumped.split()[1]) > 0
    assert (dumps / "planted.dmp").read_bytes()[:4] == b"MDMP"
