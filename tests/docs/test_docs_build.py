"""The docs site builds with no warning (Sphinx ``-W``, as its README command says), on every
Python the suite runs on, and its API reference documents every public name."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import actorio
import actorio.asyncapi
import actorio.compat
import actorio.nats
import actorio.persistence
import actorio.telemetry
import actorio.testing
from tests.docs.pages import DOCS

# The site's build (its subprocess given 300 s) is part of a test: a busy machine needs more than
# the suite's 60 s a test.
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once for this module's tests (about 6 s of CPU)."""
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-q", "-b", "html", str(DOCS), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    return out


def test_the_site_builds_without_a_warning(site: Path) -> None:
    assert (site / "index.html").is_file()
    for page in DOCS.rglob("*.md"):
        if "_build" not in page.parts:
            assert (site / page.relative_to(DOCS)).with_suffix(".html").is_file(), page


@pytest.mark.parametrize(
    ("package", "page"),
    [
        (actorio, "api"),
        (actorio.testing, "testing"),
        (actorio.nats, "nats"),
        (actorio.persistence, "persistence"),
        (actorio.telemetry, "telemetry"),
        (actorio.compat, "contracts"),
        (actorio.asyncapi, "contracts"),
    ],
    ids=[
        "actorio",
        "actorio.testing",
        "actorio.nats",
        "actorio.persistence",
        "actorio.telemetry",
        "actorio.compat",
        "actorio.asyncapi",
    ],
)
def test_the_api_reference_documents_every_public_name(site: Path, package: object, page: str) -> None:
    html = (site / "reference" / f"{page}.html").read_text()
    documented = set(re.findall(r'id="([\w.]+)"', html))
    names: list[str] = vars(package)["__all__"]
    if package is actorio.testing:  # the same object as actorio.DeadLetter, documented there
        names = [name for name in names if name != "DeadLetter"]
    missing = [name for name in names if f"{vars(package)['__name__']}.{name}" not in documented]
    assert not missing


def test_a_guide_dropped_into_docs_is_listed_by_itself() -> None:
    """The index's Guides table of contents ends with a glob: a new page at the top of docs/ is
    in the navigation without an edit (and a page in no table of contents fails the build)."""
    index = (DOCS / "index.md").read_text()
    guides = re.search(r"```\{toctree\}\n:caption: Guides\n(.*?)```", index, re.S)
    assert guides is not None
    assert ":glob:" in guides[1]
    assert guides[1].rstrip().endswith("\n*")
