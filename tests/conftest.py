import os

import wrpn_rtl  # noqa: F401  (first: it pins numpy's BLAS kernels before numpy loads)

import pytest
from hypothesis import settings

# Property tests: deterministic and bounded in CI (no deadline: machines are shared and noisy).
settings.register_profile("ci", max_examples=120, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=60, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture
def rng(request):
    """A NumPy generator seeded from the test's name, so every test is reproducible."""
    import zlib
    import numpy as np
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))
