"""The repository needs nothing outside itself.

A fresh clone must be able to run every test and read every document, so no tracked file may
name a folder beside the checkout or an absolute path of one particular machine. The history in
CHANGELOG.md is exempt: it records what was true when each entry was written.
"""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXEMPT = {"CHANGELOG.md"}
# Built from pieces so that this file does not name them itself.
FORBIDDEN = (
    "../" + "shared",
    "shared/" + "events",
    "shared/" + "notes",
    "/" + "work/",
    "/" + "root/",
)


def tracked_files() -> list[str]:
    """The files git tracks in this checkout (pytest.skip outside a git checkout)."""
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed, so the tracked files cannot be listed")
    top = subprocess.run(
        [git, "-C", str(ROOT), "rev-parse", "--show-toplevel"],
        capture_output=True,
        text=True,
        check=False,
    )
    if top.returncode != 0 or Path(top.stdout.strip()).resolve() != ROOT:
        pytest.skip("not a git checkout of the project, so there are no tracked files to check")
    listed = subprocess.run(
        [git, "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True
    )
    return [name for name in listed.stdout.decode().split("\0") if name]


def text_of(path: Path) -> str | None:
    """The file's text, or None for a binary file (or one deleted but not yet committed)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if b"\0" in data:
        return None
    return data.decode("utf-8", errors="replace")


def outside_references(root: Path, names: list[str]) -> list[str]:
    """``file:line: string`` for each forbidden string in the named files under ``root``."""
    found = []
    for name in names:
        if name in EXEMPT:
            continue
        text = text_of(root / name)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            found += [f"{name}:{number}: {word}" for word in FORBIDDEN if word in line]
    return found


def test_no_tracked_file_names_a_path_outside_the_repository() -> None:
    names = tracked_files()
    assert names, "git ls-files listed nothing"
    assert outside_references(ROOT, names) == []


def test_the_check_finds_each_forbidden_path(tmp_path: Path) -> None:
    """The check itself can fail: each forbidden string is found, CHANGELOG.md is exempt."""
    for number, word in enumerate(FORBIDDEN):
        (tmp_path / f"doc{number}.md").write_text(f"see {word}x for details\n")
    (tmp_path / "CHANGELOG.md").write_text(f"- moved from {FORBIDDEN[0]}\n")
    (tmp_path / "blob.bin").write_bytes(b"\0" + FORBIDDEN[3].encode())
    names = [f"doc{number}.md" for number in range(len(FORBIDDEN))]
    found = outside_references(tmp_path, [*names, "CHANGELOG.md", "blob.bin", "deleted.md"])
    assert found == [f"doc{n}.md:1: {word}" for n, word in enumerate(FORBIDDEN)]
