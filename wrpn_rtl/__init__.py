"""wrpn-rtl: streaming RTL for wide reduced-precision neural networks.

Sub-packages: :mod:`wrpn_rtl.golden` (NumPy golden model), :mod:`wrpn_rtl.sim` (cocotb
benches), :mod:`wrpn_rtl.synth` (Yosys/nextpnr flows). Importing this package stays light: the
Amaranth components are imported from their own modules.
"""
import os
import platform
import sys

__version__ = "0.1.0"

#: The OpenBLAS kernels numpy runs on x86-64 with AVX2 and FMA. numpy's OpenBLAS picks its
#: kernels by the CPU it finds (``DYNAMIC_ARCH``); AVX-512 machines get other kernels than
#: AVX2 ones, whose float rounding differs, and training, which sums millions of products,
#: then gives another network (the shipped model's recorded command remade it with 0.9722
#: instead of 0.9750 test accuracy on an AVX-512 EPYC). Pinned, every such machine trains
#: the same network bit for bit.
OPENBLAS_KERNELS = "Haswell"


def _pin_blas_kernels():
    """Set ``OPENBLAS_CORETYPE`` to :data:`OPENBLAS_KERNELS` before numpy loads OpenBLAS, on
    Linux x86-64 whose CPU has AVX2 and FMA (the kernels need them), unless it is already
    set. Without effect once numpy is imported."""
    if "OPENBLAS_CORETYPE" in os.environ or "numpy" in sys.modules:
        return
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return
    try:
        with open("/proc/cpuinfo") as info:
            flags = next((line.split(":", 1)[1].split() for line in info
                          if line.startswith("flags")), [])
    except OSError:
        return
    if "avx2" in flags and "fma" in flags:
        os.environ["OPENBLAS_CORETYPE"] = OPENBLAS_KERNELS


_pin_blas_kernels()
