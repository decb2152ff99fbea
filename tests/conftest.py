"""Shared test helpers: tools that must exist under CI, and a place for dumps."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Under scripts/test, the package tested must be the wheel installed in its venv."""
    venv = os.environ.get("SNAPSHOTDUMP_EXPECT_INSTALLED")
    if not venv:
        return
    import snapshotdump

    where = pathlib.Path(snapshotdump.__file__ or "").resolve()
    if not where.is_relative_to(pathlib.Path(venv).resolve()):
        raise pytest.UsageError(f"the tests imported snapshotdump from {where}, not from the "
                                f"wheel installed in {venv}")


def require(condition: bool, why: str) -> None:
    """Skip on a developer machine, fail under CI: CI has installed everything."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required under CI: {why}")
    pytest.skip(why)


def require_tool(name: str, *candidates: str) -> str:
    for candidate in (name, *candidates):
        path = shutil.which(candidate) or (candidate if os.path.isfile(candidate) else None)
        if path:
            return path
    require(False, f"{name} is not installed (see .ci/run for the package)")
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def c_binary(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """tests/targets/target.c, built once per session."""
    compiler = require_tool("gcc", "cc")
    binary = tmp_path_factory.mktemp("c-target") / "target"
    source = pathlib.Path(__file__).parent / "targets" / "target.c"
    subprocess.run([compiler, "-O1", "-g", "-pthread", "-o", str(binary), str(source)],
                   check=True)
    return binary


@pytest.fixture
def c_target(c_binary: pathlib.Path) -> Iterator[Any]:
    """A running C target, checked untouched at the end and always killed."""
    from .support import running

    if not sys.platform.startswith("linux"):
        pytest.skip("Linux targets")
    with running([str(c_binary)]) as process:
        yield process


@pytest.fixture
def windows_fakes(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The Windows backend over fakes of its DLLs, on any OS; fails on any protocol violation.

    It replaces, from outside, what the library chose at import: the backend, the DLL
    table and the interpreter's architecture (the declarations are x64's).
    """
    from snapshotdump import _api
    from snapshotdump._windows import arch, libs

    from .fake_windows import FakeLibraries

    fake = FakeLibraries()
    monkeypatch.setattr(_api, "BACKEND", _api.WINDOWS)
    monkeypatch.setattr(libs, "LIBRARIES", fake)
    monkeypatch.setattr(arch, "interpreter", lambda: arch.SUPPORTED)
    yield fake
    fake.check_clean()
