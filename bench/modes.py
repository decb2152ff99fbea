"""Capture modes side by side: stack-only, pre-copy, clone and gcore, against the fork() floor.

Run by hand (as root, gcc and gdb installed):

    python bench/modes.py --size 1024 --normal-size 4096 --runs 3 --markdown docs/performance.md

All figures come from one run, so the ratios compare like with like:

- the pause of a NORMAL dump (stack-only capture; and a clone, as before) at --normal-size;
- the pause of a FULL dump while the target dirties 1% of its memory a second (pre-copy,
  clone), with the target's own fork() time, and gcore's;
- the time to write the full dump, to a real file and to /dev/null (the page cache of the
  machine then decides nothing), against gcore writing its core the same two ways;
- the copy-on-write tax: a writer thread writing across all of the target's memory as fast as
  it can, its page writes a second during the dump, and how much the system's AnonPages grew;
- service latency: a local HTTP server (Python, holding --size MiB) under a bounded client
  loop, and the worst request latency while each tool dumps it;
- the dumper's peak RSS.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import pathlib
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable

from target_process import Target  # bench/ is the script's folder, first on sys.path

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
DUMPER = r"""
import json, resource, sys
import snapshotdump
from snapshotdump import CaptureFlags, CaptureMemory, MiniDumpType
pid, dest, mode, kind = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
memory = {"stacks": CaptureMemory.STACKS, "precopy": CaptureMemory.PRECOPY}.get(
    mode, CaptureMemory.ALL)
flags = CaptureFlags.DEFAULT & ~CaptureFlags.VA_CLONE if mode == "freeze" else \
    CaptureFlags.DEFAULT
dump_type = MiniDumpType.WITH_FULL_MEMORY if kind == "full" else MiniDumpType.NORMAL
with snapshotdump.capture(pid, flags, memory=memory) as snap:
    if dest == "/dev/null":
        with open(dest, "wb") as sink:
            result = snap.write_dump(sink, dump_type)
    else:
        result = snap.write_dump(dest, dump_type)
    performance = snap.performance
print(json.dumps({"pause": max(performance.pauses_seconds or (performance.pause_seconds,)),
                  "mode": performance.capture_mode, "write": result.seconds,
                  "size": result.size,
                  "final_mib": (performance.precopy_final_bytes or 0) / 2**20,
                  "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""
SERVER = r"""
import http.server, sys
ballast = bytearray(int(sys.argv[1]) << 20)
for i in range(0, len(ballast), 4096):
    ballast[i] = 1
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def dumper(pid: int, dest: str, mode: str, kind: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", DUMPER, str(pid), dest, mode, kind],
                         capture_output=True, text=True, env=env, check=True)
    return dict(json.loads(out.stdout))


def gcore(pid: int, work: pathlib.Path, to_null: bool) -> float:
    """Seconds gcore takes to write its core (through a symlink to /dev/null if asked)."""
    prefix = work / ("nullcore" if to_null else "core")
    if to_null:
        (work / f"nullcore.{pid}").symlink_to("/dev/null")
    started = time.perf_counter()
    subprocess.run(["gcore", "-o", str(prefix), str(pid)], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True)
    took = time.perf_counter() - started
    for core in work.glob("*core.*"):
        core.unlink()
    return took


def anon_pages_kib() -> int:
    with open("/proc/meminfo") as meminfo:
        return next(int(line.split()[1]) for line in meminfo if line.startswith("AnonPages:"))


def while_sampling(action: Callable[[], object]) -> tuple[float, int]:
    """Run *action*; (its seconds, the largest growth of AnonPages seen meanwhile, KiB)."""
    before = anon_pages_kib()
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], anon_pages_kib())
            done.wait(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        action()
    finally:
        took = time.perf_counter() - started
        done.set()
        sampler.join()
    return took, peak[0] - before


def measure(binary: pathlib.Path, mib: int, runs: int, work: pathlib.Path,
            samples: dict[str, list[float]]) -> None:
    def add(key: str, value: float) -> None:
        samples.setdefault(key, []).append(value)

    target = Target(binary, mib)
    try:
        one_percent = max(1, mib * 256 // 100)  # pages a second
        for _ in range(runs):
            add("fork_ms", target.ask("f") / 1000)
            target.ask(f"w {one_percent}")
            for mode in ("precopy", "clone"):
                os.sync()
                target.ask("r")
                result = dumper(target.pid, str(work / "full.dmp"), mode, "full")
                assert result["mode"] == mode, result
                add(f"{mode}_gap_ms", target.ask("g") / 1000)
                add(f"{mode}_reported_ms", result["pause"] * 1000)
                add(f"{mode}_write_s", result["write"])
                add(f"{mode}_rss_mib", result["rss_kib"] / 1024)
                add(f"{mode}_final_mib", result["final_mib"])
                add("full_size_mib", result["size"] / 2**20)
                (work / "full.dmp").unlink()
                null = dumper(target.pid, "/dev/null", mode, "full")
                add(f"{mode}_null_s", null["write"])
            os.sync()
            target.ask("r")
            add("gcore_s", gcore(target.pid, work, to_null=False))
            add("gcore_gap_ms", target.ask("g") / 1000)
            add("gcore_null_s", gcore(target.pid, work, to_null=True))
            # The copy-on-write tax: a writer at full speed, during each kind of dump.
            target.ask("w -1")
            for tool in ("precopy", "clone", "gcore"):
                before = target.ask("c")

                def run(tool: str = tool) -> None:
                    if tool == "gcore":
                        gcore(target.pid, work, to_null=True)
                    else:
                        dumper(target.pid, "/dev/null", tool, "full")

                took, grown = while_sampling(run)
                add(f"{tool}_writes_per_s", (target.ask("c") - before) / took)
                add(f"{tool}_anon_growth_mib", grown / 1024)
            before = target.ask("c")
            time.sleep(1.0)
            add("idle_writes_per_s", target.ask("c") - before)
            target.ask("w 0")
    finally:
        target.close()


def measure_normal(binary: pathlib.Path, mib: int, runs: int, work: pathlib.Path,
                   samples: dict[str, list[float]]) -> None:
    target = Target(binary, mib)
    try:
        for _ in range(runs):
            samples.setdefault("normal_fork_ms", []).append(target.ask("f") / 1000)
            for mode in ("stacks", "clone"):
                target.ask("r")
                result = dumper(target.pid, str(work / "normal.dmp"), mode, "normal")
                samples.setdefault(f"normal_{mode}_gap_ms", []).append(target.ask("g") / 1000)
                samples.setdefault(f"normal_{mode}_reported_ms", []).append(
                    result["pause"] * 1000)
                (work / "normal.dmp").unlink()
    finally:
        target.close()


def service_latency(mib: int, work: pathlib.Path, samples: dict[str, list[float]]) -> None:
    """The worst request latency of a local HTTP server while each tool dumps it."""
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(mib)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        for tool, mode, kind in (("normal (stacks)", "stacks", "normal"),
                                 ("full (pre-copy)", "precopy", "full"),
                                 ("full (clone)", "clone", "full"), ("gcore", "gcore", "full")):
            worst = [0.0]
            done = threading.Event()

            def client(worst: list[float] = worst, done: threading.Event = done) -> None:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                while not done.is_set():
                    started = time.perf_counter()
                    connection.request("GET", "/")
                    connection.getresponse().read()
                    worst[0] = max(worst[0], time.perf_counter() - started)
                    done.wait(0.002)  # a bounded loop: about 500 requests a second at most
                connection.close()

            thread = threading.Thread(target=client, daemon=True)
            thread.start()
            time.sleep(0.3)
            worst[0] = 0.0
            if mode == "gcore":
                gcore(server.pid, work, to_null=True)
            else:
                dumper(server.pid, "/dev/null", mode, kind)
            done.set()
            thread.join()
            samples.setdefault(f"latency_{tool}_ms", []).append(worst[0] * 1000)
    finally:
        server.kill()
        server.wait()


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "n/a"


def table(r: dict[str, float], size: int, normal_size: int, runs: int) -> str:
    fork = r["fork_ms"]
    lines = [
        f"Medians of {runs} run(s) on {platform.node()} ({os.cpu_count()} cores, kernel "
        f"{platform.release()}), {time.strftime('%Y-%m-%d')}.  Full dumps: {size} MiB "
        f"resident, 1% of it written a second while the dump is written.",
        "",
        f"| pause of the target | ms | / its fork() ({fork:.1f} ms) |",
        "|---|---|---|",
        f"| NORMAL dump, stack-only capture, {normal_size} MiB (ticker / reported) | "
        f"{r['normal_stacks_gap_ms']:.2f} / {r['normal_stacks_reported_ms']:.2f} | "
        f"{ratio(r['normal_stacks_gap_ms'], r['normal_fork_ms'])} of "
        f"{r['normal_fork_ms']:.1f} ms |",
        f"| NORMAL dump, clone, {normal_size} MiB | {r['normal_clone_gap_ms']:.1f} / "
        f"{r['normal_clone_reported_ms']:.1f} | "
        f"{ratio(r['normal_clone_gap_ms'], r['normal_fork_ms'])} |",
        f"| FULL dump, pre-copy (longest stop) | {r['precopy_gap_ms']:.2f} / "
        f"{r['precopy_reported_ms']:.2f} | {ratio(r['precopy_gap_ms'], fork)} |",
        f"| FULL dump, clone | {r['clone_gap_ms']:.1f} / {r['clone_reported_ms']:.1f} | "
        f"{ratio(r['clone_gap_ms'], fork)} |",
        f"| gcore | {r['gcore_gap_ms']:.0f} | {ratio(r['gcore_gap_ms'], fork)} |",
        "",
        "| writing the full dump | real file | /dev/null | dumper peak RSS |",
        "|---|---|---|---|",
        f"| pre-copy | {r['precopy_write_s']:.2f} s ({ratio(r['precopy_write_s'], r['gcore_s'])}"
        f" of gcore) | {r['precopy_null_s']:.2f} s "
        f"({ratio(r['precopy_null_s'], r['gcore_null_s'])}) | {r['precopy_rss_mib']:.0f} MiB |",
        f"| clone | {r['clone_write_s']:.2f} s ({ratio(r['clone_write_s'], r['gcore_s'])}) | "
        f"{r['clone_null_s']:.2f} s ({ratio(r['clone_null_s'], r['gcore_null_s'])}) | "
        f"{r['clone_rss_mib']:.0f} MiB |",
        f"| gcore | {r['gcore_s']:.2f} s | {r['gcore_null_s']:.2f} s | |",
        "",
        f"Pre-copy copied {r['precopy_final_mib']:.1f} MiB inside its final stop.",
        "",
        f"| while a thread writes across all {size} MiB as fast as it can "
        f"({r['idle_writes_per_s'] / 1e6:.1f} M page writes/s undisturbed) | page writes/s "
        "during the dump | system AnonPages growth |",
        "|---|---|---|",
    ]
    for tool in ("precopy", "clone", "gcore"):
        lines.append(f"| {tool} | {r[f'{tool}_writes_per_s'] / 1e6:.2f} M | "
                     f"{r[f'{tool}_anon_growth_mib']:.0f} MiB |")
    lines += ["", f"| service latency: a Python HTTP server holding {size} MiB | worst request "
              "during the dump |", "|---|---|"]
    for key in sorted(k for k in r if k.startswith("latency_")):
        lines.append(f"| {key[len('latency_'):-len('_ms')]} | {r[key]:.1f} ms |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024, help="MiB for the full dumps")
    parser.add_argument("--normal-size", type=int, default=4096,
                        help="MiB for the NORMAL dump pause")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--markdown", type=pathlib.Path, help="also write the tables here")
    args = parser.parse_args()
    if not shutil.which("gcore"):
        sys.exit("gcore (gdb) is needed for the comparison")
    samples: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as folder:
        work = pathlib.Path(folder)
        binary = work / "bench-target"
        subprocess.run(["gcc", "-O2", "-pthread", "-o", str(binary), str(HERE / "target.c")],
                       check=True)
        measure_normal(binary, args.normal_size, args.runs, work, samples)
        measure(binary, args.size, args.runs, work, samples)
        for _ in range(args.runs):
            service_latency(args.size, work, samples)
    results = {key: statistics.median(values) for key, values in samples.items()}
    text = table(results, args.size, args.normal_size, args.runs)
    print(text)
    print(json.dumps(samples, indent=1), file=sys.stderr)
    if args.markdown:
        head = args.markdown.read_text() if args.markdown.exists() else ""
        before, _, rest = head.partition("<!-- modes -->")
        after = rest.partition("<!-- /modes -->")[2]
        args.markdown.write_text(f"{before}<!-- modes -->\n{text}\n<!-- /modes -->{after}")


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
