import numpy as np
import pytest


@pytest.fixture(params=["c", "python"])
def backend(request):
    """Every behaviour test runs against both backends."""
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(0)
