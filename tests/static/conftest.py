"""Fixtures of the static checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.static.corpus import write_stripped
from tests.static.project_pyright import PyrightReport, run_pyright


@pytest.fixture(scope="session")
def stripped_fail_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The typing corpus's fail files with their ignore comments removed, outside the repository."""
    return write_stripped(tmp_path_factory.mktemp("stripped-corpus"))


@pytest.fixture(scope="session")
def pyright_report(stripped_fail_files: list[Path]) -> PyrightReport:
    """pyright strict over the project and the stripped fail files: one run for the tests that
    assert on their files."""
    return run_pyright(beside=stripped_fail_files[0].parent)
