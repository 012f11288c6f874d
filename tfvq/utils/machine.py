"""What machine a figure was measured on: the CPU's name, vector extensions and core count,
and the versions of the packages installed there.

Speed choices and published numbers differ between CPUs that share a name ("AMD EPYC" names
chips with and without AVX-512), so every benchmark result and the cached `jit_compile`
choice record this description, not the name alone.
"""

import importlib.metadata
import os
import platform

# The extensions that change which code paths are fastest here, in the order printed.
_EXTENSIONS = ("avx2", "avx512f", "avx512_bf16", "amx_tile")


def cpu_info(path="/proc/cpuinfo"):
    """`(model name, set of flags)` of the first CPU listed in `path` (the platform's name and
    no flags where that file cannot be read)."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name") and not flags:
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    return name, flags


def describe_cpu(path="/proc/cpuinfo"):
    """The CPU as one line: name, the vector extensions that matter, and the core count.

    Args:
      path: the cpuinfo file to read.

    Returns:
      A string such as "Intel(R) Xeon(R) Processor (avx2 avx512f avx512_bf16 amx_tile,
      2 cores)".

    Example:
    >>> from tfvq.utils.machine import describe_cpu
    >>> describe_cpu().endswith(f"{os.cpu_count()} cores)")
    True
    """
    name, flags = cpu_info(path)
    extensions = [f for f in _EXTENSIONS if f in flags]
    return f"{name} ({' '.join(extensions) or 'no AVX2'}, {os.cpu_count()} cores)"


def vector_kind(path="/proc/cpuinfo"):
    """"AVX-512", "AVX2" or "no AVX2": the kind of CPU a figure belongs to.

    Example:
    >>> from tfvq.utils.machine import vector_kind
    >>> vector_kind() in ("AVX-512", "AVX2", "no AVX2")
    True
    """
    flags = cpu_info(path)[1]
    return "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"


def installed_versions(names):
    """`{name: version}` of those of the distributions `names` that are installed, in order.

    Read from the installed metadata rather than written down, because an unpinned package
    once ran at another version than the one its benchmark section named. Names that are not
    installed are left out (one of "tensorflow" and "tensorflow-cpu", say).

    Example:
    >>> from tfvq.utils.machine import installed_versions
    >>> list(installed_versions(["keras", "no-such-distribution"]))
    ['keras']
    """
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions
