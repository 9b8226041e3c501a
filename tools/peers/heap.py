"""Keep glibc's heap for the peers' PyTorch runs on the CPU.

By default glibc maps each large allocation anew and returns it to the system when freed,
so a call's fresh output of a few MB is faulted in page by page every time: on a 2-core AMD
EPYC, PyTorch's 1×1 64→256 conv at 56² took 2.4–2.5 ms that way and 0.61–0.63 ms with the
heap kept. That is the allocator's cost, not the conv's, and convscope's buffers are pooled,
so the peers' scripts run with the heap kept: `keep()` re-runs the calling script with
MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_ raised unless they are set."""
import os, sys

VARS = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


def kept():
    return all(k in os.environ for k in VARS)


def keep():
    if not kept():
        os.execve(sys.executable, [sys.executable] + sys.argv, {**os.environ, **VARS})
