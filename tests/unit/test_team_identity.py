"""A repository's identity: its remote URL read from .git/config without git, normalised so
that every clone of one repository, by any URL form, names the same project."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from memq.team import identity
from memq.team.identity import (
    normalise_remote,
    parse_config,
    project_identity,
    repository_identity,
)


def write_repo(root: Path, config: str) -> Path:
    """A repository at ``root`` whose .git/config is ``config``."""
    (root / ".git").mkdir(parents=True)
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / ".git" / "config").write_text(config)
    return root


ORIGIN = '[remote "origin"]\n\turl = {url}\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n'


class TestNormalise:
    @pytest.mark.parametrize(
        "url",
        [
            "git@github.com:Owner/Repo.git",
            "https://user:pw@GitHub.com/Owner/Repo",
            "ssh://git@github.com:22/Owner/Repo.git/",
            "https://github.com/owner/repo.git",
            "https://github.com:443/owner/repo",
            "http://github.com/Owner/Repo/",
            "git://github.com/owner/repo.git",
            "git+ssh://git@github.com/owner/repo.git",
            "ssh+git://github.com/owner/repo",
            "github.com:owner/repo.git",
            "  git@github.com:owner//repo.git  ",
            "https://github.com/owner/repo.git?ref=main#readme",
            "HTTPS://GITHUB.COM/OWNER/REPO.GIT",
            "https://token@github.com/Owner/Repo",
        ],
    )
    def test_every_form_of_one_github_repository_is_one_identity(self, url: str) -> None:
        assert normalise_remote(url) == "github.com/owner/repo"

    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            # Path case is kept where the host may tell case apart.
            ("git@git.example.com:Team/Repo.git", "git.example.com/Team/Repo"),
            ("https://Git.Example.COM/Team/Repo", "git.example.com/Team/Repo"),
            # A port that is not the scheme's default stays; one that is, goes.
            ("ssh://git@git.example.com:2222/Team/Repo.git", "git.example.com:2222/Team/Repo"),
            ("https://git.example.com:8443/team/repo", "git.example.com:8443/team/repo"),
            ("https://git.example.com:443/team/repo", "git.example.com/team/repo"),
            ("git://git.example.com:9418/team/repo", "git.example.com/team/repo"),
            ("ssh://git.example.com:443/team/repo", "git.example.com:443/team/repo"),
            # Groups nest on GitLab; Bitbucket ignores case like GitHub.
            ("git@gitlab.com:Group/Sub/Proj.git", "gitlab.com/group/sub/proj"),
            ("https://bitbucket.org/Team/Repo.git", "bitbucket.org/team/repo"),
            # Only one .git goes; a repository whose name ends in .git keeps the rest.
            ("https://github.com/o/r.git.git", "github.com/o/r.git"),
            ("https://[2001:db8::1]:8443/team/repo.git", "[2001:db8::1]:8443/team/repo"),
            ("ssh://git@[2001:db8::1]/team/repo.git", "[2001:db8::1]/team/repo"),
            ("git@[2001:db8::1]:team/repo.git", "[2001:db8::1]/team/repo"),
            ("ssh://host.example/~user/repo.git", "host.example/~user/repo"),
            ("git@host.example.:team/repo", "host.example/team/repo"),
        ],
    )
    def test_other_hosts(self, url: str, expected: str) -> None:
        assert normalise_remote(url) == expected

    @pytest.mark.parametrize(
        "url",
        [
            "",
            "/srv/git/repo.git",
            "../sibling",
            "./repo",
            "~/repos/repo.git",
            "file:///srv/git/repo.git",
            "FILE://localhost/srv/repo",
            "C:/Users/me/repo",
            "C:\\Users\\me\\repo",
            "https://github.com/",
            "https://github.com",
            "git@github.com:",
            "git@github.com:.git",
            "repo",
        ],
    )
    def test_a_local_path_or_no_repository_is_none(self, url: str) -> None:
        assert normalise_remote(url) is None

    def test_credentials_never_reach_the_identity(self) -> None:
        found = normalise_remote("https://alice:s3cr3t-pass@git.example.com/team/repo")
        assert found == "git.example.com/team/repo"


class TestProjectIdentity:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("github.com/owner/repo", "github.com/owner/repo"),
            ("GitHub.com/Owner/Repo", "github.com/owner/repo"),
            ("github.com/owner/repo.git/", "github.com/owner/repo"),
            ("git.example.com:2222/Team/Repo", "git.example.com:2222/Team/Repo"),
            ("git.example.com/Team/Repo", "git.example.com/Team/Repo"),
            ("git@github.com:Owner/Repo.git", "github.com/owner/repo"),
            ("https://github.com/Owner/Repo", "github.com/owner/repo"),
        ],
    )
    def test_an_identity_or_a_url(self, text: str, expected: str) -> None:
        assert project_identity(text) == expected

    @pytest.mark.parametrize("text", ["", "repo", "/srv/repo", "./a/b", "has space/x"])
    def test_what_names_no_repository(self, text: str) -> None:
        assert project_identity(text) is None

    def test_an_identity_is_its_own_identity(self) -> None:
        for url in ("git@github.com:O/R.git", "ssh://h.example:2222/T/R", "https://[::1]/a/b"):
            once = normalise_remote(url)
            assert once is not None
            assert project_identity(once) == once or once.startswith("[")


class TestConfigFile:
    def test_sections_keys_and_values_as_git_reads_them(self) -> None:
        """As ``git config --file`` reads them: each blank outside quotes before more text
        is one space, the one before a line's final backslash too."""
        text = (
            "# a comment\n"
            "[Core]\n"
            "\tBare = false\n"
            '[remote "Up Stream"]\n'
            '  URL = "https://example.com/a b/repo"  ; comment\n'
            "[remote.Old]\n"
            "\turl = git@example.com:old/repo # trailing\n"
            '[remote "x"] url = ssh://h.example/x\n'
            '[remote "esc\\"aped"]\n'
            '\turl = "quoted # not a comment" \\\n'
            "  continued\n"
            "\tflag\n"
        )
        assert parse_config(text) == [
            ("core", None, "bare", "false"),
            ("remote", "Up Stream", "url", "https://example.com/a b/repo"),
            ("remote", "old", "url", "git@example.com:old/repo"),
            ("remote", "x", "url", "ssh://h.example/x"),
            ("remote", 'esc"aped', "url", "quoted # not a comment   continued"),
            ("remote", 'esc"aped', "flag", "true"),
        ]

    def test_escapes_and_blanks_in_values(self) -> None:
        assert parse_config('[a]\n\tk = x\\ty\\\\z\\"q\t\tr\n') == [
            ("a", None, "k", 'x\ty\\z"q  r')
        ]

    def test_a_broken_header_hides_its_entries(self) -> None:
        text = '[remote "origin"\n\turl = https://example.com/bad/repo\n[ok]\n\tk = v\n'
        assert parse_config(text) == [("ok", None, "k", "v")]


class TestRepositoryIdentity:
    def test_origin_of_the_repository(self, tmp_path: Path) -> None:
        repo = write_repo(tmp_path / "clone", ORIGIN.format(url="git@github.com:Owner/Repo.git"))
        assert repository_identity(repo) == "github.com/owner/repo"

    def test_from_a_subdirectory(self, tmp_path: Path) -> None:
        repo = write_repo(tmp_path / "clone", ORIGIN.format(url="https://gitlab.com/G/P.git"))
        deep = repo / "src" / "pkg"
        deep.mkdir(parents=True)
        assert repository_identity(deep) == "gitlab.com/g/p"
        assert repository_identity(str(deep)) == "gitlab.com/g/p"

    def test_two_clones_by_different_urls_are_one_project(self, tmp_path: Path) -> None:
        a = write_repo(tmp_path / "a", ORIGIN.format(url="git@github.com:Acme/App.git"))
        b = write_repo(
            tmp_path / "elsewhere" / "b", ORIGIN.format(url="https://github.com/acme/app")
        )
        assert repository_identity(a) == repository_identity(b) == "github.com/acme/app"

    def test_origin_wins_over_a_remote_before_it(self, tmp_path: Path) -> None:
        config = (
            '[remote "fork"]\n\turl = git@github.com:me/app.git\n'
            '[remote "origin"]\n\turl = git@github.com:acme/app.git\n'
        )
        assert repository_identity(write_repo(tmp_path, config)) == "github.com/acme/app"

    def test_without_origin_the_first_remote(self, tmp_path: Path) -> None:
        config = (
            '[remote "empty"]\n\tfetch = x\n'
            '[remote "upstream"]\n\turl = git@github.com:acme/app.git\n'
            '[remote "fork"]\n\turl = git@github.com:me/app.git\n'
        )
        assert repository_identity(write_repo(tmp_path, config)) == "github.com/acme/app"

    def test_a_second_url_of_origin_is_for_pushing(self, tmp_path: Path) -> None:
        config = (
            '[remote "origin"]\n\turl = git@github.com:a/one.git\n\turl = git@github.com:a/two\n'
        )
        assert repository_identity(write_repo(tmp_path, config)) == "github.com/a/one"

    def test_insteadof_rules_of_the_repository(self, tmp_path: Path) -> None:
        config = (
            '[url "git@github.com:"]\n\tinsteadOf = gh:\n'
            '[url "ssh://git@git.example.com:2222/"]\n\tinsteadOf = ex:\n\tinsteadOf = e:\n'
            + ORIGIN.format(url="ex:Team/Repo")
        )
        assert repository_identity(write_repo(tmp_path, config)) == "git.example.com:2222/Team/Repo"

    @pytest.mark.parametrize(
        "config",
        [
            "[core]\n\tbare = false\n",  # no remote
            ORIGIN.format(url="/srv/git/app.git"),  # a remote on this disk
            ORIGIN.format(url="../app"),
            "",
            "\x00\xff garbage [[[",
        ],
    )
    def test_no_shareable_remote_is_none(self, tmp_path: Path, config: str) -> None:
        assert repository_identity(write_repo(tmp_path, config)) is None

    def test_outside_any_repository(self, tmp_path: Path) -> None:
        assert repository_identity(tmp_path) is None
        assert repository_identity(tmp_path / "missing" / "dir") is None

    def test_a_git_directory_without_config(self, tmp_path: Path) -> None:
        (tmp_path / ".git").mkdir()
        assert repository_identity(tmp_path) is None

    def test_an_oversized_config_is_not_read(self, tmp_path: Path) -> None:
        padding = "# " + "x" * identity.MAX_CONFIG_BYTES + "\n"
        repo = write_repo(tmp_path, padding + ORIGIN.format(url="git@github.com:a/b"))
        assert repository_identity(repo) is None

    def test_the_nearest_repository_counts(self, tmp_path: Path) -> None:
        """A repository inside another (a vendored clone): the inner one's remote."""
        outer = write_repo(tmp_path, ORIGIN.format(url="git@github.com:acme/outer"))
        inner = write_repo(outer / "vendor" / "lib", ORIGIN.format(url="git@github.com:acme/lib"))
        assert repository_identity(inner / "x") == "github.com/acme/lib"
        assert repository_identity(outer / "vendor") == "github.com/acme/outer"


class TestGitFiles:
    """A ``.git`` file names the git directory: worktrees and submodules."""

    def test_a_worktree_reads_the_main_repository_config(self, tmp_path: Path) -> None:
        main = write_repo(tmp_path / "main", ORIGIN.format(url="git@github.com:Acme/App.git"))
        gitdir = main / ".git" / "worktrees" / "feature"
        gitdir.mkdir(parents=True)
        (gitdir / "commondir").write_text("../..\n")
        tree = tmp_path / "feature"
        tree.mkdir()
        (tree / ".git").write_text(f"gitdir: {gitdir}\n")
        assert repository_identity(tree) == "github.com/acme/app"

    def test_a_relative_gitdir(self, tmp_path: Path) -> None:
        """A submodule: its ``.git`` file names a directory relative to itself, which has
        its own config (no commondir)."""
        parent = write_repo(tmp_path / "parent", ORIGIN.format(url="git@github.com:acme/p"))
        module_dir = parent / ".git" / "modules" / "lib"
        module_dir.mkdir(parents=True)
        (module_dir / "config").write_text(ORIGIN.format(url="https://github.com/Acme/Lib"))
        sub = parent / "lib"
        sub.mkdir()
        (sub / ".git").write_text("gitdir: ../.git/modules/lib\n")
        assert repository_identity(sub / ".") == "github.com/acme/lib"

    @pytest.mark.parametrize("content", ["nonsense\n", "gitdir: /no/such/dir\n", ""])
    def test_a_git_file_that_names_nothing(self, tmp_path: Path, content: str) -> None:
        (tmp_path / ".git").write_text(content)
        assert repository_identity(tmp_path) is None


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
class TestAgainstGit:
    """What real git writes, read the same way; git is only run to make the files."""

    def git(self, cwd: Path, *args: str) -> None:
        subprocess.run(
            ["git", *args],
            cwd=cwd,
            check=True,
            capture_output=True,
            env={"GIT_CONFIG_NOSYSTEM": "1", "HOME": str(cwd), "PATH": "/usr/bin:/bin"},
        )

    def test_git_init_and_remote_add(self, tmp_path: Path) -> None:
        repo = tmp_path / "repo"
        repo.mkdir()
        self.git(repo, "init", "-q")
        self.git(repo, "remote", "add", "upstream", "ssh://git@GitHub.com:22/Acme/App.git/")
        assert repository_identity(repo) == "github.com/acme/app"
        self.git(repo, "remote", "add", "origin", "https://u:p@git.example.com/Team/App")
        assert repository_identity(repo) == "git.example.com/Team/App"

    def test_git_worktree(self, tmp_path: Path) -> None:
        repo = tmp_path / "repo"
        repo.mkdir()
        self.git(repo, "init", "-q")
        self.git(repo, "remote", "add", "origin", "git@github.com:Acme/App.git")
        self.git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q",
                 "--allow-empty", "-m", "first")  # fmt: skip
        self.git(repo, "worktree", "add", "-q", str(tmp_path / "wt"))
        assert (tmp_path / "wt" / ".git").is_file()
        assert repository_identity(tmp_path / "wt") == "github.com/acme/app"


def test_the_module_imports_only_the_standard_library() -> None:
    """It may run on the hook's path: a fresh interpreter importing it loads nothing of
    memq's but itself (and its package) and no third-party module."""
    code = (
        "import sys; import memq.team.identity; "
        "print(sorted(m for m in sys.modules if m.startswith('memq')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == "['memq', 'memq.team', 'memq.team.identity']"
