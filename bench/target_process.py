"""The benchmark target (bench/target.c) as a process the benchmarks drive line by line."""

from __future__ import annotations

import pathlib
import subprocess


class Target:
    def __init__(self, binary: pathlib.Path, mib: int) -> None:
        self.process = subprocess.Popen([str(binary), str(mib)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, bufsize=1)
        self.pid = int(self._line().split()[1])

    def _line(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline()

    def ask(self, command: str) -> int:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        words = self._line().split()
        return int(words[1]) if len(words) > 1 else 0

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
