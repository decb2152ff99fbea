"""SystemInfoStream: the CPU and the OS (Breakpad's Linux platform id, the kernel version)."""

from __future__ import annotations

import os

from ...minidump.file import DumpFile, Location
from ...minidump.format import PLATFORM_LINUX
from .plan import DumpPlan


def write(plan: DumpPlan, out: DumpFile, arch_cpu: dict[str, int], processor: int) -> Location:
    uname = os.uname()
    numbers = [int("".join(c for c in part if c.isdigit()) or 0)
               for part in uname.release.split("-")[0].split(".")[:3]]
    major, minor, build = [*numbers, 0, 0, 0][:3]
    csd = out.string(f"{uname.sysname} {uname.release} {uname.version} {uname.machine}")
    info = out.new("MINIDUMP_SYSTEM_INFO")
    info.ProcessorArchitecture = processor
    info.ProcessorLevel = arch_cpu["level"]
    info.ProcessorRevision = arch_cpu["revision"]
    info.NumberOfProcessors = min(os.cpu_count() or 1, 255)
    info.ProductType = 1  # VER_NT_WORKSTATION, as Breakpad writes for Linux
    info.MajorVersion, info.MinorVersion, info.BuildNumber = major, minor, build
    info.PlatformId = PLATFORM_LINUX
    info.CSDVersionRva = csd
    cpu = info.Cpu.X86CpuInfo
    cpu.VendorId[0], cpu.VendorId[1], cpu.VendorId[2] = (
        arch_cpu["vendor0"], arch_cpu["vendor1"], arch_cpu["vendor2"])
    cpu.VersionInformation = arch_cpu["version"]
    return out.append_struct(info)
