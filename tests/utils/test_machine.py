import os

import pytest

from tfvq.utils.machine import cpu_info, describe_cpu, installed_versions, vector_kind

AMD = """processor\t: 0
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse2 avx avx2 fma
processor\t: 1
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse2 avx avx2 fma
"""
INTEL = """processor\t: 0
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu avx avx2 avx512f avx512_bf16 amx_tile amx_int8
"""


@pytest.mark.parametrize(
    "text, name, kind, extensions",
    [(AMD, "AMD EPYC 7B13", "AVX2", "avx2"),
     (INTEL, "Intel(R) Xeon(R) Processor", "AVX-512", "avx2 avx512f avx512_bf16 amx_tile"),
     ("model name\t: Old\nflags\t\t: fpu sse2\n", "Old", "no AVX2", "no AVX2")],
)
def test_cpu_descriptions(tmp_path, text, name, kind, extensions):
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    assert cpu_info(path)[0] == name
    assert vector_kind(path) == kind
    assert describe_cpu(path) == f"{name} ({extensions}, {os.cpu_count()} cores)"


def test_unreadable_cpuinfo_still_describes_the_machine(tmp_path):
    name, flags = cpu_info(tmp_path / "missing")
    assert name and flags == set()
    assert vector_kind(tmp_path / "missing") == "no AVX2"


def test_installed_versions_read_the_metadata_and_leave_out_the_missing():
    import importlib.metadata

    versions = installed_versions(["numpy", "no-such-distribution", "keras"])
    assert versions == {"numpy": importlib.metadata.version("numpy"),
                        "keras": importlib.metadata.version("keras")}
    assert list(versions) == ["numpy", "keras"]
