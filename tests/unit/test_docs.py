"""The README stays a short start and docs/ holds the reference, with nothing lost between them.

The README must stay under 12 KB and link every page of ``docs/``; every relative link in the
README and in ``docs/`` must lead to a file that exists (and to a heading of it, for an anchor
into a Markdown page); every ``SCALER_*`` setting (from
:class:`scaler.settings.Settings`) is documented in ``docs/settings.md``, and every metric family
the code registers (from :class:`scaler.metrics.Metrics`'s registry) in ``docs/metrics.md``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scaler.metrics import Metrics
from scaler.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
# [text](target): the target up to a space or ')' (a link title is never used here)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# a link whose target names a scheme (https:, mailto:) or is only an anchor
ABSOLUTE = re.compile(r"^([a-z][a-z0-9+.-]*:|#)", re.I)


def _prose(page: Path) -> str:
    """``page``'s text without its code blocks."""
    return re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)


def _targets(page: Path) -> list[str]:
    """The relative link targets in ``page``, outside code blocks, with their anchors."""
    return [t for t in LINK.findall(_prose(page)) if not ABSOLUTE.match(t)]


def _relative_links(page: Path) -> list[str]:
    """The relative link targets in ``page``, without their anchors."""
    return [t.split("#", 1)[0] for t in _targets(page)]


def _anchors(page: Path) -> set[str]:
    """The anchors a renderer gives ``page``'s headings: lower case, punctuation dropped, spaces
    as hyphens."""
    headings = re.findall(r"^#+ (.*)$", _prose(page), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_the_readme_is_under_12_kb() -> None:
    size = len(README.read_bytes())
    assert size < 12_288, f"README.md is {size} bytes; move reference text to docs/"


def test_docs_has_pages() -> None:
    names = {page.name for page in PAGES}
    assert {"settings.md", "metrics.md", "running.md"} <= names, names


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {(README.parent / t).resolve() for t in _relative_links(README)}
    missing = [f"docs/{page.name}" for page in PAGES if page.resolve() not in linked]
    assert not missing, f"docs pages the README does not link: {missing}"


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_leads_to_a_file(page: Path) -> None:
    broken = [t for t in _relative_links(page) if not (page.parent / t).exists()]
    assert not broken, f"{page.relative_to(ROOT)} links to missing files: {broken}"


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_anchor_into_a_page_names_one_of_its_headings(page: Path) -> None:
    broken = []
    for target in _targets(page):
        name, _, anchor = target.partition("#")
        linked = page.parent / name
        if anchor and name.endswith(".md") and linked.exists():
            broken += [] if anchor in _anchors(linked) else [target]
    assert not broken, f"{page.relative_to(ROOT)} links to missing headings: {broken}"


def test_every_setting_is_in_docs_settings() -> None:
    text = (DOCS / "settings.md").read_text()
    names = [ENV_PREFIX + name.upper() for name in Settings.model_fields]
    assert len(names) > 20  # the model was read
    missing = [name for name in names if f"`{name}`" not in text]
    assert not missing, f"settings not documented in docs/settings.md: {missing}"


def test_every_metric_family_is_in_docs_metrics() -> None:
    text = (DOCS / "metrics.md").read_text()
    families = []
    for family in Metrics().registry.collect():
        if not family.name.startswith("scaler_"):
            continue  # prometheus_client's own process and runtime families
        families.append(f"{family.name}_total" if family.type == "counter" else family.name)
    assert len(families) > 20  # the registry was read
    missing = [name for name in sorted(families) if f"`{name}`" not in text]
    assert not missing, f"metrics not documented in docs/metrics.md: {missing}"
