"""wrpn-rtl: streaming RTL for wide reduced-precision neural networks.

Sub-packages: :mod:`wrpn_rtl.golden` (NumPy golden model), :mod:`wrpn_rtl.sim` (cocotb
benches), :mod:`wrpn_rtl.synth` (Yosys/nextpnr flows). Importing this package stays light: the
Amaranth components are imported from their own modules.
"""
__version__ = "0.1.0"
