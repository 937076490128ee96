"""The rules a job's code passes before anything is unpacked or fetched, word
for word: an archive member's path, a repository's URL and reference, a local
repository's folder. Fast (no database): the mutation gate runs them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from experiments import job_code
from experiments.job_code import CodeRefused

BACKSLASH = "a path with a backslash or a NUL is not accepted."
ABSOLUTE = "absolute paths are not accepted."
LEAVES = "a path may not leave the archive's folder (..)."


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("a\\b.py", BACKSLASH),
        ("\\b.py", BACKSLASH),
        ("a\x00b.py", BACKSLASH),
        ("/etc/passwd", ABSOLUTE),
        ("C:/Windows/x.py", ABSOLUTE),
        ("c:x.py", ABSOLUTE),
        ("Z:", ABSOLUTE),
        ("../x.py", LEAVES),
        ("a/../../x.py", LEAVES),
        ("a/..", LEAVES),
    ],
)
def test_a_member_path_that_escapes_is_refused_word_for_word(name: str, why: str) -> None:
    with pytest.raises(CodeRefused) as refused:
        job_code._clean_member(name)
    assert str(refused.value) == f"“{name}”: {why}"


def test_a_long_refused_name_is_cut_at_a_hundred_characters() -> None:
    name = "x" * 99 + "\\" + "y" * 50
    with pytest.raises(CodeRefused) as refused:
        job_code._clean_member(name)
    assert str(refused.value) == f"“{name[:100]}”: {BACKSLASH}"


@pytest.mark.parametrize(
    ("name", "clean"),
    [
        ("train.py", "train.py"),
        ("./src//model/./fit.py", "src/model/fit.py"),
        ("1:x.py", "1:x.py"),  # a digit and a colon is a name, not a drive
        ("a..b/c.py", "a..b/c.py"),  # dots inside a name are not a way up
        ("./", None),
        ("", None),
        (".", None),
    ],
)
def test_a_member_path_is_made_relative_and_plain(name: str, clean: str | None) -> None:
    assert job_code._clean_member(name) == clean


GOOD_URL = "https://git.example.com/team/churn.git"


@pytest.mark.parametrize(
    ("url", "ref", "why"),
    [
        ("", "main", "Give the repository's URL."),
        ("   ", "main", "Give the repository's URL."),
        ("https://h/" + "x" * 491, "main", "The repository's URL is longer than 500 characters."),
        (GOOD_URL, "", "Give a branch, tag or commit (letters, digits, . _ / -)."),
        (GOOD_URL, "-x", "Give a branch, tag or commit (letters, digits, . _ / -)."),
        (GOOD_URL, "a..b", "Give a branch, tag or commit (letters, digits, . _ / -)."),
        (GOOD_URL, "main.lock", "Give a branch, tag or commit (letters, digits, . _ / -)."),
        (GOOD_URL, "feature/", "Give a branch, tag or commit (letters, digits, . _ / -)."),
        (GOOD_URL, "x" * 201, "Give a branch, tag or commit (letters, digits, . _ / -)."),
        ("https://h:99999/r.git", "main", "Not a URL: Port out of range 0-65535"),
        ("https://h/a b.git", "main", "A URL without spaces or control characters."),
        ("https://h/a\x07.git", "main", "A URL without spaces or control characters."),
        ("https:///r.git", "main", "An https URL with a host and without credentials in it."),
        (
            "https://me@h/r.git",
            "main",
            "An https URL with a host and without credentials in it.",
        ),
        (
            "https://me:pw@h/r.git",
            "main",
            "An https URL with a host and without credentials in it.",
        ),
        ("http://h/r.git", "main", "Only https repositories are fetched (no ssh, git or http)."),
        ("ssh://h/r.git", "main", "Only https repositories are fetched (no ssh, git or http)."),
        ("git@h:r.git", "main", "Only https repositories are fetched (no ssh, git or http)."),
        ("relative/repo", "main", "Only https repositories are fetched (no ssh, git or http)."),
    ],
)
def test_repository_urls_and_references_refused_word_for_word(url: str, ref: str, why: str) -> None:
    with pytest.raises(CodeRefused) as refused:
        job_code.check_repository(url, ref)
    assert str(refused.value) == why


@pytest.mark.parametrize("ref", ["main", "v1.2.0", "release/2026-12", "0a1b2c3", "x" * 200])
def test_good_https_repositories_and_references_pass(ref: str) -> None:
    job_code.check_repository(f"  {GOOD_URL}  ", ref)


NOT_ALLOWED = (
    "Local repositories are not allowed here; an operator may allow folders "
    "in JOBS_GIT_LOCAL_ROOTS."
)
NOT_UNDER = "That folder is not under the folders allowed in JOBS_GIT_LOCAL_ROOTS."


def test_local_repositories_only_under_the_allowed_folders(settings: Any, tmp_path: Path) -> None:
    allowed, other = tmp_path / "repos", tmp_path / "repos-other"
    (allowed / "churn" / "src").mkdir(parents=True)
    other.mkdir()
    (allowed / "escape").symlink_to(other)
    repo = allowed / "churn"

    settings.JOBS_GIT_LOCAL_ROOTS = []
    for url in (str(repo), f"file://{repo}"):
        with pytest.raises(CodeRefused) as refused:
            job_code.check_repository(url, "main")
        assert str(refused.value) == NOT_ALLOWED
    settings.JOBS_GIT_LOCAL_ROOTS = ["  ", str(allowed)]  # blank entries are no root
    assert job_code.local_roots() == [allowed.resolve()]

    assert job_code._local_repository(str(repo)) == repo.resolve()
    assert job_code._local_repository(f"file://{repo}") == repo.resolve()
    assert job_code._local_repository(str(allowed)) == allowed.resolve()  # the root itself
    assert job_code._local_repository(str(repo / "src")) == (repo / "src").resolve()
    cases = [
        (str(other), NOT_UNDER),  # a sibling whose name starts the same
        (str(allowed / "escape"), NOT_UNDER),  # a link out, resolved first
        (str(allowed / ".." / "repos-other"), NOT_UNDER),
        ("/", NOT_UNDER),
        (str(allowed / "missing"), "No repository at that path."),
        ("file:relative/repo", "A local repository is given by its absolute path."),
    ]
    for url, why in cases:
        with pytest.raises(CodeRefused) as refused:
            job_code._local_repository(url)
        assert str(refused.value) == why, url
    (allowed / "file.txt").write_text("not a folder")
    with pytest.raises(CodeRefused, match="^No repository at that path.$"):
        job_code._local_repository(str(allowed / "file.txt"))
