"""The hardware wing: Amaranth components of the streaming accelerator.

Matrix-vector unit, sliding window, max-pools, width converter, vector replay, stream FIFO,
convolution layer, classifier head, and the whole-network accelerator that chains them.
"""
