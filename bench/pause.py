"""Pause and dump-time benchmark: snapshotdump's clone and freeze modes against gcore and fork().

Run by hand (as root, gcc and gdb installed):

    python bench/pause.py --sizes 256 1024 4096 --runs 5 --markdown docs/performance.md

For every resident size, in the same run: the target's own fork() time (the floor of a
clone-based pause), the pause its ticker thread saw and the pause the library reported in
clone mode, the same in freeze mode (held for a full dump) and for gcore, the time to write a
full dump against gcore and against dd writing the same number of bytes, the dumper's peak RSS,
and the dump sizes.  Medians over --runs, with ratios, printed as a markdown table.
"""

from __future__ import annotations

import argparse
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
import time

from target_process import Target  # bench/ is the script's folder, first on sys.path

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
DUMPER = r"""
import json, resource, sys, time
import snapshotdump
pid, dest, mode, kind = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
flags = snapshotdump.CaptureFlags.DEFAULT
if mode == "freeze":
    flags &= ~snapshotdump.CaptureFlags.VA_CLONE
dump_type = snapshotdump.MiniDumpType.WITH_FULL_MEMORY if kind == "full" else 0
with snapshotdump.capture(pid, flags) as snap:
    result = snap.write_dump(dest, dump_type)
print(json.dumps({"pause": snap.performance.pause_seconds, "write": result.seconds,
                  "size": result.size,
                  "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def dumper(pid: int, dest: str, mode: str, kind: str) -> dict[str, float]:
    os.sync()  # every contender starts with no dirty pages to be throttled behind
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", DUMPER, str(pid), dest, mode, kind],
                         capture_output=True, text=True, env=env, check=True)
    return dict(json.loads(out.stdout))


def timed(command: list[str]) -> float:
    os.sync()
    started = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def measure(binary: pathlib.Path, mib: int, runs: int, work: pathlib.Path) -> dict[str, float]:
    samples: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        samples.setdefault(key, []).append(value)

    target = Target(binary, mib)
    try:
        for _ in range(runs):
            add("fork_ms", target.ask("f") / 1000)
            for mode in ("clone", "freeze"):
                target.ask("r")
                dest = work / f"{mode}.dmp"
                result = dumper(target.pid, str(dest), mode, "full")
                add(f"{mode}_gap_ms", target.ask("g") / 1000)
                add(f"{mode}_reported_ms", result["pause"] * 1000)
                add(f"{mode}_write_s", result["write"])
                add(f"{mode}_rss_mib", result["rss_kib"] / 1024)
                add("full_size_mib", result["size"] / 2**20)
                dest.unlink()
            normal = dumper(target.pid, str(work / "normal.dmp"), "clone", "normal")
            add("normal_size_kib", normal["size"] / 1024)
            (work / "normal.dmp").unlink()
            if shutil.which("gcore"):
                target.ask("r")
                add("gcore_s", timed(["gcore", "-o", str(work / "core"), str(target.pid)]))
                add("gcore_gap_ms", target.ask("g") / 1000)
                for core in work.glob("core*"):
                    add("gcore_size_mib", core.stat().st_size / 2**20)
                    core.unlink()
            size_mib = max(1, int(samples["full_size_mib"][-1]))
            add("dd_s", timed(["dd", "if=/dev/zero", f"of={work / 'dd.bin'}", "bs=1M",
                               f"count={size_mib}", "conv=fsync"]))
            (work / "dd.bin").unlink()
    finally:
        target.close()
    return {key: statistics.median(values) for key, values in samples.items()}


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "n/a"


def table(results: dict[int, dict[str, float]], runs: int) -> str:
    lines = [
        f"Medians of {runs} run(s) on {platform.node()} ({os.cpu_count()} cores, "
        f"kernel {platform.release()}), {time.strftime('%Y-%m-%d')}.",
        "",
        "| resident | fork() floor | clone pause (ticker / reported) | clone / fork | "
        "freeze pause | gcore pause | gcore / clone | full dump write | gcore | dd same bytes "
        "| ours / gcore | ours / dd | dumper peak RSS | NORMAL size | FULL size |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mib, r in results.items():
        gcore_gap = r.get("gcore_gap_ms")
        lines.append(
            f"| {mib} MiB | {r['fork_ms']:.1f} ms | {r['clone_gap_ms']:.1f} / "
            f"{r['clone_reported_ms']:.1f} ms | {ratio(r['clone_gap_ms'], r['fork_ms'])} | "
            f"{r['freeze_gap_ms']:.0f} ms | "
            f"{f'{gcore_gap:.0f} ms' if gcore_gap is not None else 'n/a'} | "
            f"{ratio(gcore_gap, r['clone_gap_ms'])} | {r['clone_write_s']:.2f} s | "
            f"{r.get('gcore_s', float('nan')):.2f} s | {r['dd_s']:.2f} s | "
            f"{ratio(r['clone_write_s'], r.get('gcore_s'))} | "
            f"{ratio(r['clone_write_s'], r['dd_s'])} | "
            f"{max(r['clone_rss_mib'], r['freeze_rss_mib']):.0f} MiB | "
            f"{r['normal_size_kib']:.0f} KiB | {r['full_size_mib']:.0f} MiB |")
    return "\n".join(lines)


def chart(results: dict[int, dict[str, float]], path: pathlib.Path) -> None:
    """Pause against resident size, log scale: ours, the fork floor, freeze mode and gcore."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(results)
    figure, axes = plt.subplots(figsize=(7, 4.2))
    for key, label in (("clone_gap_ms", "snapshotdump (clone), seen by the target"),
                       ("fork_ms", "the target's own fork()"),
                       ("freeze_gap_ms", "snapshotdump --no-clone (frozen, full dump)"),
                       ("gcore_gap_ms", "gcore")):
        if all(key in results[size] for size in sizes):
            axes.plot(sizes, [results[size][key] for size in sizes], marker="o", label=label)
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    axes.set_xlabel("target resident memory (MiB)")
    axes.set_ylabel("target paused (ms, log)")
    axes.set_xticks(sizes, [str(size) for size in sizes])
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    axes.set_title("How long the target is stopped")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 4096],
                        help="resident MiB of the target")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--markdown", type=pathlib.Path, help="also write the table here")
    parser.add_argument("--chart", type=pathlib.Path, help="also draw a PNG chart (matplotlib)")
    parser.add_argument("--from-json", type=pathlib.Path,
                        help="redraw from the JSON a previous run printed on stderr")
    args = parser.parse_args()
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        results = {int(size): values for size, values in saved.items()}
        print(table(results, args.runs))
        if args.chart:
            chart(results, args.chart)
        return
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as folder:
        work = pathlib.Path(folder)
        binary = work / "bench-target"
        subprocess.run(["gcc", "-O2", "-pthread", "-o", str(binary), str(HERE / "target.c")],
                       check=True)
        results = {mib: measure(binary, mib, args.runs, work) for mib in args.sizes}
    text = table(results, args.runs)
    print(text)
    if args.chart:
        chart(results, args.chart)
    print(json.dumps(results, indent=1), file=sys.stderr)
    if args.markdown:
        args.markdown.write_text(args.markdown.read_text().split("<!-- bench -->")[0]
                                 + "<!-- bench -->\n" + text + "\n"
                                 if args.markdown.exists() else text + "\n")


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
