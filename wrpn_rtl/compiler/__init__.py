"""The compiler wing: from a golden network to a folded design and its files.

Stage planning, folding search, cost rules, manifest and Verilog export.
"""
