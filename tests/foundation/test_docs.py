"""The documentation keeps up with the code: every setting is documented, and the project cites
only its own docs (docs/design.md sections that exist, links that resolve inside the repository),
never a file outside it."""

import re
import subprocess
from pathlib import Path

import pytest

from tests.environment import settings_variables

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

# Citations of a design file outside the repository: "DESIGN.md", "DESIGN section 9",
# "DESIGN 15" (upper case: the prose word "design" is fine).
_OUTSIDE_CITATION = re.compile(
    r"\bDESIGN\b|\b(?:STYLE|BRIEF)\.md\b|ISSUES\.txt|/work/|shared folder"
)
_DESIGN_SECTION = re.compile(r"docs/design\.md,?\s+sections?\s+(\d+(?:(?:,\s*|\s+and\s+)\d+)*)")
_MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _settings_variables() -> set[str]:
    return settings_variables()


def _project_files() -> list[Path]:
    """The files git tracks or would track (untracked but not ignored), this test excepted."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    me = Path(__file__).resolve()
    files = [ROOT / name for name in listed if name]
    return [path for path in files if path.is_file() and path.resolve() != me]


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None  # binary


def test_settings_reads_are_found():
    """The pattern sees the reads that span lines and the special readers (db, email_url)."""
    found = _settings_variables()
    assert {"DATABASE_URL", "EMAIL_URL", "ORDER_MAX_NOTIONAL", "CRYPTO_FEE_TOLERANCE_BPS"} <= found
    assert len(found) > 50


def test_every_setting_is_documented_in_configuration_md():
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]*)`", (DOCS / "configuration.md").read_text()))
    missing = sorted(_settings_variables() - documented)
    assert not missing, f"read in settings.py, not in docs/configuration.md: {missing}"


def test_no_project_file_cites_a_file_outside_the_repository():
    offenders = []
    for path in _project_files():
        text = _text(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            if _OUTSIDE_CITATION.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "cite docs/ instead:\n" + "\n".join(offenders)


def test_cited_design_sections_exist():
    headings = set(re.findall(r"^## (\d+)\. ", (DOCS / "design.md").read_text(), re.MULTILINE))
    assert headings == {str(n) for n in range(1, 20)}
    wrong = []
    for path in _project_files():
        text = _text(path)
        if text is None:
            continue
        for match in _DESIGN_SECTION.finditer(text):
            for number in re.findall(r"\d+", match.group(1)):
                if number not in headings:
                    wrong.append(f"{path.relative_to(ROOT)}: {match.group(0)!r}")
    assert not wrong, "no such section in docs/design.md:\n" + "\n".join(wrong)


@pytest.mark.parametrize("doc", ["README.md", *sorted(p.name for p in DOCS.glob("*.md"))])
def test_relative_links_resolve_inside_the_repository(doc):
    path = ROOT / doc if doc == "README.md" else DOCS / doc
    broken = []
    for target in _MARKDOWN_LINK.findall(path.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a URL or an anchor
        resolved = (path.parent / target.split("#")[0]).resolve()
        if not resolved.is_relative_to(ROOT) or not resolved.exists():
            broken.append(target)
    assert not broken, f"{doc}: links that do not resolve inside the repository: {broken}"


def test_readme_stays_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 150
