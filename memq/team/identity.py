"""A repository's identity: the normalised URL of its git remote, the same on every laptop
that cloned it, whatever the path of the clone.

``repository_identity(cwd)`` finds the repository that holds ``cwd`` (its ``.git``
directory, or the ``.git`` file of a worktree or a submodule, which names its git
directory), reads the ``url`` of remote ``origin`` (else of the first remote that has one)
from the repository's config file, applies that file's ``url.<base>.insteadOf`` rules, and
normalises it (``normalise_remote``)::

    git@github.com:Owner/Repo.git               -> github.com/owner/repo
    https://user:pw@GitHub.com/Owner/Repo        -> github.com/owner/repo
    ssh://git@github.com:22/Owner/Repo.git/      -> github.com/owner/repo
    ssh://git@git.example.com:2222/Team/Repo.git -> git.example.com:2222/Team/Repo

The scheme, the user and the password go, as does a port that is the scheme's default;
the host is lower case; ``.git`` and slashes at the ends go. The path keeps its case but
on the hosts that ignore it (github.com, gitlab.com, bitbucket.org). No repository, no
remote, or a remote on this machine's disk (a path, ``file://``): None, a project no other
laptop can name the same way, so it is not shared.

It reads two or three small files and starts no process: the hook may call it. So it
imports only the standard library, and never raises for what it finds on disk: a file it
cannot read or parse is a repository without a remote. Only the repository's own config
is read (not the user's ``~/.gitconfig``, nor ``include`` files).
"""

from __future__ import annotations

import os
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

# Hosts whose owner and repository names are case-insensitive: Owner/Repo is owner/repo.
CASE_INSENSITIVE_HOSTS: Final = frozenset({"github.com", "gitlab.com", "bitbucket.org"})
DEFAULT_PORTS: Final = {
    "ssh": "22",
    "git+ssh": "22",
    "ssh+git": "22",
    "git": "9418",
    "http": "80",
    "https": "443",
    "ftp": "21",
    "ftps": "990",
}
# A config file larger than this is no git config memq reads on the hook's path.
MAX_CONFIG_BYTES: Final = 1 << 20

Entry = tuple[str, "str | None", str, str]  # section (lower), subsection, key (lower), value

_SCHEME: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_HEADER: Final = re.compile(r'^\[\s*([A-Za-z0-9.-]+)(?:\s+"((?:[^"\\]|\\.)*)")?\s*\](.*)$')
_KEY: Final = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)\s*(=?)(.*)$")
_ESCAPES: Final = {"n": "\n", "t": "\t", "b": "\b", "\\": "\\", '"': '"'}
# An identity as ``normalise_remote`` writes it: ``host[:port]/path``.
_IDENTITY: Final = re.compile(r"^[a-z0-9.-]+(?::\d+)?(?:/[^/\s:@]+)+/*$")
_SCP_BRACKETED: Final = re.compile(r"^(?:[^@/\[]*@)?\[([^\]/]+)\]:(.*)$")


def repository_identity(cwd: str | os.PathLike[str]) -> str | None:
    """The normalised remote URL of the repository that holds ``cwd``; None when there is
    none (see the module docstring)."""
    try:
        gitdir = _find_gitdir(os.path.abspath(os.fspath(cwd)))
        if gitdir is None:
            return None
        entries = _read_config(os.path.join(_common_dir(gitdir), "config"))
    except (OSError, ValueError):
        return None
    url = remote_url(entries)
    return None if url is None else normalise_remote(rewrite_url(url, entries))


def remote_url(entries: list[Entry]) -> str | None:
    """The url of remote ``origin``, else of the first remote (in file order) with one."""
    urls: dict[str, str] = {}
    for section, subsection, key, value in entries:
        if section == "remote" and subsection is not None and key == "url" and value:
            urls.setdefault(subsection, value)  # a second url of a remote is for pushing
    return urls.get("origin", next(iter(urls.values()), None))


def rewrite_url(url: str, entries: list[Entry]) -> str:
    """``url`` after the longest matching ``url.<base>.insteadOf`` prefix, as git does."""
    best = ""
    base = ""
    for section, subsection, key, value in entries:
        rule = section == "url" and subsection and key == "insteadof"
        if rule and url.startswith(value) and len(value) > len(best):
            best, base = value, str(subsection)
    return base + url[len(best) :] if best else url


def normalise_remote(url: str) -> str | None:
    """``url`` (any form git takes for a remote) as ``host[:port]/path``; None for a path
    or a ``file://`` URL on this machine, or text that names no repository."""
    url = url.strip()
    scheme_match = _SCHEME.match(url)
    if scheme_match is not None:
        scheme = scheme_match.group(1).lower()
        if scheme == "file":
            return None
        rest = url[scheme_match.end() :]
        slash = rest.find("/")
        authority, path = (rest, "") if slash < 0 else (rest[:slash], rest[slash:])
        host, port = _host_and_port(authority.rpartition("@")[2])
        if port == DEFAULT_PORTS.get(scheme):
            port = ""
        path = path.split("?", 1)[0].split("#", 1)[0]
    else:
        # scp-like ``[user@]host:path``: a colon before any slash; else a local path.
        bracketed = _SCP_BRACKETED.match(url)
        if bracketed is not None:  # [user@]host]:path, as for an IPv6 address
            return _identity(bracketed.group(1), "", bracketed.group(2))
        colon, slash = url.find(":"), url.find("/")
        if colon <= 0 or 0 <= slash < colon:
            return None
        host, port, path = url[:colon].rpartition("@")[2], "", url[colon + 1 :]
        if len(host) == 1:  # C:\repo, C:/repo: a Windows drive
            return None
    return _identity(host, port, path)


def project_identity(text: str) -> str | None:
    """A project as a person names it (``memq keys create --project``): an identity already
    normal (``github.com/owner/repo``, ``git.example.com:2222/team/repo``), or any remote
    URL, which is normalised. None: it names no repository."""
    text = text.strip()
    if "://" not in text and "@" not in text:
        head, _, rest = text.partition("/")
        if rest and _IDENTITY.match(head.lower() + "/" + rest):
            host, _, port = head.partition(":")
            return _identity(host, port, rest)
    return normalise_remote(text)


def parse_config(text: str) -> list[Entry]:
    """The entries of a git config file, in order: ``(section, subsection, key, value)``
    with section and key in lower case (git ignores their case, not the subsection's).

    Values are read as git reads them: quotes, escapes, comments after ``#`` or ``;``
    outside quotes, lines continued by a final backslash, outer whitespace dropped. A line
    that is no header or entry is skipped, and so is everything under a header that cannot
    be read."""
    entries: list[Entry] = []
    section: str | None = None
    subsection: str | None = None
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        rest = lines[index].strip()
        index += 1
        if rest.startswith("["):
            header = _HEADER.match(rest)
            if header is None:
                section = None
                continue
            section, subsection = _section(header.group(1), header.group(2))
            rest = header.group(3).strip()  # git allows an entry after the header
        if not rest or rest[0] in "#;" or section is None:
            continue
        key = _KEY.match(rest)
        if key is None:
            continue
        if not key.group(2):  # ``name`` alone: a boolean true
            entries.append((section, subsection, key.group(1).lower(), "true"))
            continue
        value, index = _value(key.group(3), lines, index)
        entries.append((section, subsection, key.group(1).lower(), value))
    return entries


def _find_gitdir(path: str) -> str | None:
    """The git directory of the repository holding ``path``, looking upwards."""
    while True:
        dot_git = os.path.join(path, ".git")
        if os.path.isdir(dot_git):
            return dot_git
        if os.path.isfile(dot_git):
            return _follow(dot_git)
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent


def _follow(dot_git_file: str) -> str | None:
    """The git directory a ``.git`` file names (``gitdir: <path>``, relative to the file's
    directory), as worktrees and submodules have."""
    with open(dot_git_file, encoding="utf-8", errors="replace") as file:
        first = file.readline(4096).strip()
    if not first.startswith("gitdir:"):
        return None
    target = first[len("gitdir:") :].strip()
    gitdir = os.path.normpath(os.path.join(os.path.dirname(dot_git_file), target))
    return gitdir if os.path.isdir(gitdir) else None


def _common_dir(gitdir: str) -> str:
    """Where a git directory's config is: a worktree's ``commondir`` names the main one."""
    try:
        with open(os.path.join(gitdir, "commondir"), encoding="utf-8") as file:
            common = file.readline(4096).strip()
    except FileNotFoundError:
        return gitdir
    return os.path.normpath(os.path.join(gitdir, common)) if common else gitdir


def _read_config(path: str) -> list[Entry]:
    with open(path, "rb") as file:
        data = file.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        return []
    return parse_config(data.decode("utf-8", errors="replace"))


def _section(name: str, quoted: str | None) -> tuple[str, str | None]:
    if quoted is not None:
        return name.lower(), re.sub(r"\\(.)", r"\1", quoted)
    if "." in name:  # the old form [remote.origin]: its subsection in lower case
        section, _, subsection = name.partition(".")
        return section.lower(), subsection.lower()
    return name.lower(), None


def _value(text: str, lines: list[str], index: int) -> tuple[str, int]:
    """A value starting at ``text``, continued on the next lines after a final backslash;
    returns it and the index of the line after it."""
    out: list[str] = []
    spaces = 0  # whitespace outside quotes: one space each, written only if text follows
    quoted = False
    while True:
        position = 0
        continued = False
        while position < len(text):
            char = text[position]
            position += 1
            if not quoted and char in " \t":
                spaces += 1 if out else 0
                continue
            if not quoted and char in "#;":
                break
            out.append(" " * spaces)
            spaces = 0
            if char == "\\":
                if position == len(text):
                    continued = True
                    break
                out.append(_ESCAPES.get(text[position], text[position]))
                position += 1
            elif char == '"':
                quoted = not quoted
            else:
                out.append(char)
        if not continued or index >= len(lines):
            return "".join(out), index
        text = lines[index]
        index += 1


def _host_and_port(hostport: str) -> tuple[str, str]:
    if hostport.startswith("["):  # [::1]:22
        host, _, after = hostport[1:].partition("]")
        return host, after[1:] if after.startswith(":") else ""
    host, colon, port = hostport.rpartition(":")
    if colon and (port.isdigit() or not port):
        return host, port
    return hostport, ""


def _identity(host: str, port: str, path: str) -> str | None:
    host = host.strip().lower().rstrip(".")
    if not host or any(char in host for char in "/@ \t"):
        return None
    parts = [part for part in path.replace("\\", "/").split("/") if part and part != "."]
    if parts and parts[-1].lower().endswith(".git"):
        parts[-1] = parts[-1][: -len(".git")]
        if not parts[-1]:
            parts.pop()
    if not parts:
        return None
    joined = "/".join(parts)
    if host in CASE_INSENSITIVE_HOSTS:
        joined = joined.lower()
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    return f"{host}:{port}/{joined}" if port else f"{host}/{joined}"
