"""Fixtures of the reliability tests: their C targets, built once per session."""

from __future__ import annotations

import pathlib
import subprocess
from collections.abc import Iterator

import pytest

from ..conftest import require_tool
from ..support import Target

TARGETS = pathlib.Path(__file__).parents[1] / "targets"


def build(factory: pytest.TempPathFactory, name: str) -> pathlib.Path:
    compiler = require_tool("gcc", "cc")
    binary = factory.mktemp(name) / name
    subprocess.run([compiler, "-O2", "-pthread", "-o", str(binary), str(TARGETS / f"{name}.c")],
                   check=True)
    return binary


@pytest.fixture(scope="session")
def signal_binary(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return build(tmp_path_factory, "signal_target")


@pytest.fixture(scope="session")
def seccomp_binary(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return build(tmp_path_factory, "seccomp_target")


@pytest.fixture
def target(signal_binary: pathlib.Path) -> Iterator[Target]:
    """A running signal_target (tests/targets/signal_target.c), closed after the test."""
    process = Target([str(signal_binary)])
    try:
        yield process
    finally:
        process.close()
