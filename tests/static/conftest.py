"""Fixtures of the static checks."""

from __future__ import annotations

import pytest

from tests.static.project_pyright import PyrightReport, run_pyright


@pytest.fixture(scope="session")
def pyright_report() -> PyrightReport:
    """pyright strict over the project: one run for the tests that assert on its files."""
    return run_pyright()
