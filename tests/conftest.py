import os

import numpy as np
import pytest


@pytest.fixture(scope="session", autouse=True)
def _outside_the_source_tree(tmp_path_factory):
    """Run the session (and the subprocesses tests start) from a scratch folder:
    from the repository root, `python -c` would import the source folder pyad/,
    which has no compiled extension, instead of the installed package."""
    old = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    try:
        yield
    finally:
        os.chdir(old)


@pytest.fixture(params=["c", "python"])
def backend(request):
    """Every behaviour test runs against both backends."""
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(0)
