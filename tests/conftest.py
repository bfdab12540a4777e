"""Fixtures shared by the test files: each is built once per test process and only read by the tests
(a test that changes a run works on its own copy)."""

import pytest
from evolving import evolve


@pytest.fixture(scope="session")
def small_run(tmp_path_factory):
    """``evolving.SMALL`` evolved once (seed 0, one worker): the run directory and its log messages."""
    return evolve(tmp_path_factory.mktemp("small"), "run")
