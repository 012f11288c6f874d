"""Resident memory of one benchmark step, shared by quantizer.py and scaling.py."""

import ctypes


def status_kib(field):
    """A size field of /proc/self/status (e.g. "VmRSS", "VmHWM"), in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_memory_mib(step, steps=3):
    """Resident-memory high-water mark of `steps` calls over the resident memory before them.

    Linux and glibc only: after one untimed call (which traces or compiles), returns the heap's
    free memory to the system (`malloc_trim`) and resets VmHWM through /proc/self/clear_refs, so
    the figure is what one steady-state step needs on top of what the process holds between
    steps: intermediates such as the (N, K) distance matrix, gradients, buffers.
    """
    step()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    before = status_kib("VmRSS")
    for _ in range(steps):
        step()
    return (status_kib("VmHWM") - before) / 1024
