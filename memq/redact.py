"""Secrets memq never stores: keys, tokens and passwords are replaced by a marker naming
their kind (``[redacted:github-token]``), never their value, before anything is written.

The hook applies it to every event before it is posted, written to the database or spooled,
and marks the event with its rules' fingerprint (``memq_redacted``); the daemon applies it
again to what it takes in without the same mark (a client other than the hook, a hook with
other settings) and to its log lines. The mark saves the daemon a second pass over every
event (more than half of them hold a trigger word, ``token`` or ``pass``, and would be
walked); it is no defence against a client holding the token, which could post anything
anyway: redaction keeps memq's own hooks from storing secrets by accident.

Standard library only and cheap when nothing is found: a rule's matches
start at one of its literal triggers (``ghp_``, ``://``, ``password``), found with
``str.find``; its pattern is tried only there (a rule whose triggers are absent is never
run), and compiled the first time it runs (the hook is a fresh process per event; most events
never compile one).

What it does not redact on purpose: hex digests and commit ids, UUIDs, base64 data (images,
lockfile integrity hashes), long identifiers. A provider key is recognised by its prefix and
shape; anything else only next to a name that says secret, token, password or key.
"""

from __future__ import annotations

import binascii
import math
import re

from memq.exceptions import SettingError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from typing import Any, Final

MARKER_PREFIX: Final = "[redacted:"
# The field a redacted event carries: the fingerprint of the rules that redacted it.
REDACTED_MARK: Final = "memq_redacted"
# Raised whenever a built-in rule changes, so that events marked by older rules are redacted
# again by newer ones.
RULES_REVISION: Final = 1
CUSTOM_KIND: Final = "custom"
# The shortest text any rule can find a secret in (``a://b:c@``): shorter strings are skipped.
MIN_TEXT: Final = 8
# A user pattern may name the part to hide; without the group the whole match goes.
SECRET_GROUP: Final = "secret"  # noqa: S105 - a group name, not a secret
# How JSON writes a character as its code (``\u0041`` is "A"): no screen of the bytes sees
# through it.
_JSON_ESCAPE: Final = b"\\u"


def marker(kind: str) -> str:
    """The text a secret of ``kind`` is replaced with."""
    return f"{MARKER_PREFIX}{kind}]"


class _Rule:
    """One kind of secret: a pattern, the group holding the secret (the rest of the match
    stays), the literal texts a match starts at, and a check of the value."""

    __slots__ = (
        "_byte_finder",
        "_compiled",
        "_finder",
        "byte_triggers",
        "check",
        "flags",
        "folded",
        "group",
        "kind",
        "source",
        "triggers",
    )

    def __init__(
        self,
        kind: str | Callable[[re.Match[str]], str],
        source: str,
        triggers: tuple[str, ...],
        *,
        group: int | str = 0,
        folded: bool = False,
        flags: int = 0,
        check: Callable[[re.Match[str], str], bool] | None = None,
    ) -> None:
        self.kind = kind
        self.source = source
        self.triggers = triggers  # lowercase when ``folded``: looked for in the lowered text
        self.folded = folded
        self.group = group
        self.flags = flags
        self.check = check
        self._compiled: re.Pattern[str] | None = None
        # In JSON text "/" may be written "\/": "://" then reads ":\/\/".
        encoded = [trigger.encode() for trigger in triggers]
        self.byte_triggers = (*encoded, *(t.replace(b"/", b"\\/") for t in encoded if b"/" in t))
        self._finder: list[re.Pattern[str]] = []
        self._byte_finder: list[re.Pattern[bytes] | None] = []

    @property
    def pattern(self) -> re.Pattern[str]:
        if self._compiled is None:
            self._compiled = re.compile(self.source, self.flags)
        return self._compiled

    @property
    def finders(self) -> tuple[re.Pattern[str], ...]:
        """Patterns that find the triggers: one for triggers that start alike (``ghp_``,
        ``gho_``, ...; the engine looks for their common start as fast as for one), else
        one a trigger. A literal's ``finditer`` beats a loop of ``str.find`` calls, most
        where a trigger is frequent (``token`` in code)."""
        if not self._finder:
            triggers = self.triggers
            if _start_alike(triggers):
                self._finder.append(re.compile("|".join(map(re.escape, triggers))))
            else:
                self._finder.extend(re.compile(re.escape(trigger)) for trigger in triggers)
        return tuple(self._finder)

    @property
    def byte_finder(self) -> re.Pattern[bytes] | None:
        """A pattern that finds the triggers in JSON bytes, for triggers that start alike;
        None when ``in`` is quicker (one trigger, or nothing in common)."""
        if not self._byte_finder:
            triggers = self.byte_triggers
            alike = _start_alike(triggers)
            self._byte_finder.append(
                re.compile(b"|".join(map(re.escape, triggers))) if alike else None
            )
        return self._byte_finder[0]

    def in_bytes(self, haystack: bytes) -> bool:
        """Whether a trigger is in ``haystack`` (lowered when the rule is ``folded``)."""
        finder = self.byte_finder
        if finder is not None:
            return finder.search(haystack) is not None
        return any(trigger in haystack for trigger in self.byte_triggers)


def _start_alike(triggers: tuple[str, ...] | tuple[bytes, ...]) -> bool:
    """Whether there are several ``triggers`` and they start with the same character."""
    return len(triggers) > 1 and len({trigger[:1] for trigger in triggers}) == 1


# Checks of a candidate value (``match``, ``value``): True to redact it.


def _has_digit_and_letter(_match: re.Match[str], value: str) -> bool:
    return any(c.isdigit() for c in value) and any(c.isalpha() for c in value)


def _mixed_case_alnum(_match: re.Match[str], value: str) -> bool:
    """Real keys mix upper, lower and digits; kebab-case names and hex digests do not."""
    return (
        any(c.isdigit() for c in value)
        and any(c.isupper() for c in value)
        and any(c.islower() for c in value)
    )


def _mixed_case(_match: re.Match[str], value: str) -> bool:
    return value != value.lower() and value != value.upper()


def _long_private_key(match: re.Match[str], _value: str) -> bool:
    # A line that only names the header (a parser's source, a doc) has no body to hide.
    return match.end() - match.start() >= 64


_PLACEHOLDER_START: Final = ("$", "<", "{{", "%(", "%s", "[redacted:", "/", "./", "../", "~/")
# Values that stand for a type, a switch or nothing (``token: str``, ``password: null``).
_NOT_SECRETS: Final = frozenset(
    (  # noqa: SIM905 - a line of words reads better than a column of them
        "none null nil true false undefined str string int bytes bool boolean number any object "
        "optional required empty yes no on off env secret password token"
    ).split()
)


def _is_placeholder(value: str) -> bool:
    """A reference to a secret, not one: ``$TOKEN``, ``${{ secrets.X }}``, ``<your key>``,
    ``****``, a path, or a marker."""
    lowered = value.lower()
    return (
        not value
        or value.startswith(_PLACEHOLDER_START)
        or value.endswith(">")
        or lowered in _NOT_SECRETS
        or len(set(value)) == 1
        or (value.isdigit() and len(value) < 6)
    )


def _name_before(text: str, start: int) -> str:
    """The start of the name that goes on with the keyword at ``start`` (``DB_`` of
    ``DB_PASSWORD``); at most 64 characters of it (base64 would be one long name)."""
    i, low = start, max(0, start - 64)
    while i > low and (text[i - 1].isalnum() or text[i - 1] in "_-."):
        i -= 1
    return text[i:start]


def _full_name(match: re.Match[str]) -> str:
    return _name_before(match.string, match.start()) + match.group("name")


def _is_secret_name(match: re.Match[str]) -> bool:
    """Whether the name ending at the match says secret: ``pass`` and ``pwd`` as a word of
    it (``DB_PASS``, not ``bypass`` or ``OLDPWD``), ``key`` after a word that makes it a
    credential (``API_KEY``, ``x-api-key``, ``clientKey``; not ``sort_key``)."""
    tail = match.group("name").lower()
    before = _name_before(match.string, match.start())
    if tail.startswith(("password", "passwd", "passphrase", "secret", "token")):
        return True
    if tail.startswith(("pass", "pwd")):
        return not before[-1:].isalpha()
    return before.lower().rstrip("_-").endswith(_KEY_OWNERS)


def _assigned_secret(match: re.Match[str], value: str) -> bool:
    """A value given to a name that says secret: not a placeholder, and not code
    (``token = self.token``, ``password: str``, ``API_KEY: Final = ...``)."""
    if _is_placeholder(value) or len(value) < 3 or not _is_secret_name(match):
        return False
    if match.group("q") is not None:
        return not any(c.isspace() for c in value)
    spaced = match.group("op") != "=" or match.group("sp") != ""
    if not spaced:
        return True  # ``NAME=value``: a .env file, a shell, a query string
    if match.string[match.end() : match.end() + 8].lstrip(" \t").startswith("="):
        return False  # ``TOKEN: Final = ...``: a type, then the value
    if value.replace("_", "a").replace(".", "a").isalpha():
        # ``name = word`` or ``name: word`` is code or prose, unless the name is an
        # environment variable's (``POSTGRES_PASSWORD: example`` in a compose file).
        return _full_name(match).isupper()
    return True


def _aws_secret(match: re.Match[str], _value: str) -> bool:
    head = match.string[match.start() : match.start("value")]
    name = (_name_before(match.string, match.start()) + head).lower()
    return "aws" in name or "access" in name


def _high_entropy(match: re.Match[str], value: str) -> bool:
    """Random-looking: upper, lower and digits, and at least 3.5 bits a character (hex
    digests and UUIDs have one case only)."""
    if not _mixed_case_alnum(match, value):
        return False
    counts: dict[str, int] = {}
    for c in value:
        counts[c] = counts.get(c, 0) + 1
    n = len(value)
    entropy = -sum(k / n * math.log2(k / n) for k in counts.values())
    return entropy >= 3.5


def _url_password(_match: re.Match[str], value: str) -> bool:
    # Any length counts (``postgres://u:p@h``); a reference or a mask does not.
    return not value.startswith(("$", "<", "{{", "%")) and set(value) != {"*"}


def _assignment_kind(match: re.Match[str]) -> str:
    name = _full_name(match).lower()
    if "pass" in name or "pwd" in name:
        return "password"
    if "token" in name:
        return "token"
    if "secret" in name:
        return "secret"
    if "key" in name:
        return "api-key"
    return "secret"


def _auth_kind(match: re.Match[str]) -> str:
    scheme = (match.group("scheme") or "").lower()
    return "bearer-token" if scheme in ("bearer", "") else "authorization"


# A name that says its value is a secret ends with one of these words (any case; ``pass``,
# ``pwd`` and ``key`` only as described in ``_is_secret_name``). Matches start at the word:
# the rest of the name is read backwards (``_name_before``), so that ``DB_PASSWORD``,
# ``clientSecret`` and ``SECRET_KEY_BASE`` all count and ``tokens``, ``token_count``,
# ``bypass`` and ``sort_key`` do not.
_NAME: Final = (
    r"(?P<name>(?:pass(?:word|wd|phrase)?|pwd|secret|token|key)"
    r"(?:[_-]?(?:key|base|value)){0,2}\d*)"
)
_NAME_TRIGGERS: Final = ("pass", "pwd", "secret", "token", "key")
_KEY_OWNERS: Final = (
    "api",
    "access",
    "private",
    "auth",
    "signing",
    "encryption",
    "master",
    "client",
    "app",
    "secret",
)
_BASE64URL: Final = r"[A-Za-z0-9_-]"
_END: Final = r"(?![A-Za-z0-9_-])"
_START: Final = r"(?<![A-Za-z0-9_-])"

# Every rule's match starts where one of its triggers is found (looking behind is fine). In
# order: a provider's key inside a URL or an assignment is found as itself first; the later,
# looser rules skip values that are already markers.
RULES: Final[tuple[_Rule, ...]] = (
    _Rule(
        "private-key",
        r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
        r"(?:[A-Za-z0-9+/=\\\s:,.-]*?-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
        r"|[A-Za-z0-9+/=\\\s:,.-]*)",
        ("-----BEGIN",),
        check=_long_private_key,
    ),
    _Rule(
        "aws-access-key-id",
        r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z2-7]{16}(?![A-Za-z0-9])",
        ("AKIA", "ASIA", "ABIA", "ACCA", "A3T"),
    ),
    _Rule(
        "aws-secret-key",
        r"secret_?(?:access_?)?key[\"']?\s*(?:=|:|=>)\s*[\"']?"
        r"(?P<value>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
        ("secret",),
        group="value",
        folded=True,
        flags=re.IGNORECASE,
        check=_aws_secret,
    ),
    _Rule(
        "github-token",
        _START + r"(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})" + _END,
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    _Rule(
        "gitlab-token",
        _START + r"(?:glpat|gldt|glrt|glptt)-" + _BASE64URL + r"{20,255}" + _END,
        ("glpat-", "gldt-", "glrt-", "glptt-"),
    ),
    _Rule("anthropic-key", _START + r"sk-ant-" + _BASE64URL + r"{32,255}" + _END, ("sk-ant-",)),
    _Rule(
        "openai-key",
        _START + r"sk-(?:proj-|svcacct-|admin-)?(?P<value>" + _BASE64URL + r"{20,255})" + _END,
        ("sk-",),
        check=_mixed_case_alnum,
    ),
    _Rule("google-api-key", _START + r"AIza" + _BASE64URL + r"{35}" + _END, ("AIza",)),
    _Rule("google-oauth-secret", _START + r"GOCSPX-" + _BASE64URL + r"{28}" + _END, ("GOCSPX-",)),
    _Rule(
        "slack-webhook",
        r"hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+",
        ("hooks.slack.com",),
    ),
    _Rule("slack-token", _START + r"xox[abeoprs]-[A-Za-z0-9-]{10,255}" + _END, ("xox",)),
    _Rule(
        "stripe-key",
        r"(?:"
        + _START
        + r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,255}|whsec_[A-Za-z0-9]{24,})"
        + _END,
        ("sk_live_", "rk_live_", "sk_test_", "rk_test_", "whsec_"),
    ),
    _Rule(
        "npm-token", _START + r"npm_[A-Za-z0-9]{36}" + _END, ("npm_",), check=_has_digit_and_letter
    ),
    _Rule("pypi-token", _START + r"pypi-Ag" + _BASE64URL + r"{50,}" + _END, ("pypi-Ag",)),
    _Rule("huggingface-token", _START + r"hf_[A-Za-z]{34}" + _END, ("hf_",), check=_mixed_case),
    _Rule(
        "sendgrid-key",
        _START + r"SG\." + _BASE64URL + r"{22}\." + _BASE64URL + r"{43}" + _END,
        ("SG.",),
    ),
    _Rule(
        "jwt",
        _START + r"eyJ" + _BASE64URL + r"{10,}\.eyJ" + _BASE64URL + r"{10,}\.[A-Za-z0-9_-]*",
        ("eyJ",),
    ),
    _Rule(
        "url-password",
        r"://[^\s:/?#@\"'<>\[\]]*:(?P<value>[^\s/?#@\"'<>]+)@",
        ("://",),
        group="value",
        check=_url_password,
    ),
    _Rule(
        "password",
        # ``curl -u user:pass``, ``curl --user user:pass``.
        r"(?<![A-Za-z0-9_-])curl\b[^\n]{0,200}?\s(?:-u|--user)[ =][\"']?[^\s:\"']+:"
        r"(?P<value>[^\s\"']+)",
        ("curl",),
        group="value",
        check=lambda _m, v: not _is_placeholder(v),
    ),
    _Rule(
        "password",
        # ~/.netrc: ``machine HOST login NAME password SECRET``.
        r"\bmachine\s+\S+\s+login\s+\S+\s+password\s+(?P<value>\S+)",
        ("machine",),
        group="value",
        check=lambda _m, v: not _is_placeholder(v),
    ),
    _Rule(
        _auth_kind,
        r"(?:authorization[\"']?\s*[:=]\s*[\"']?(?P<scheme>bearer|basic|token|bot|digest)?"
        r"|bearer)\s+(?P<value>[A-Za-z0-9._~+/-]{12,}=*)",
        ("bearer", "authorization"),
        group="value",
        folded=True,
        flags=re.IGNORECASE,
        check=lambda _m, v: any(c.isdigit() for c in v) and not v.startswith("$"),
    ),
    _Rule(
        _assignment_kind,
        _NAME + r"[\"']?(?P<sp>[ \t]*)(?P<op>:=|=>|=|:)[ \t]*"
        r"(?:(?P<q>[\"'])(?P<qv>[^\"'\n]{1,512}+)(?P=q)"
        r"|(?P<v>[^\s\"'`,;&(){}\[\]<>]{1,512}+)(?=$|[\s\"'`;&]))",
        _NAME_TRIGGERS,
        group="qv|v",
        folded=True,
        flags=re.IGNORECASE | re.MULTILINE,
        check=_assigned_secret,
    ),
    _Rule(
        "secret",
        r"(?:password|passwd|secret|token|api[ _-]?key|apikey|access[ _-]?key)s?\b"
        r"[^\n]{0,24}?(?<![A-Za-z0-9+/_-])(?P<value>[A-Za-z0-9+/_-]{20,}={0,2})"
        r"(?![A-Za-z0-9+/=_-])",
        ("pass", "secret", "token", "api", "access"),
        group="value",
        folded=True,
        flags=re.IGNORECASE,
        check=_high_entropy,
    ),
)
# Every kind a marker can name.
KINDS: Final = tuple(
    sorted(
        {rule.kind for rule in RULES if isinstance(rule.kind, str)}
        | {"password", "token", "secret", "api-key", "bearer-token", "authorization", CUSTOM_KIND}
    )
)


class Redactor:
    """Replaces secrets in text and payloads; the built-in rules plus the user's patterns.

    Args:
        patterns: the user's regular expressions (``redact_patterns``); each match is
            replaced by ``[redacted:custom]`` (only its ``(?P<secret>...)`` group, if it has
            one). ``SettingError`` for one that does not compile or matches empty text.
    """

    __slots__ = ("_custom", "fingerprint", "patterns")

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self.patterns = tuple(patterns)
        self._custom = tuple(compile_pattern(p) for p in self.patterns)
        # What an event these rules redacted carries (REDACTED_MARK). A CRC, not a hash from
        # hashlib: that import alone would add milliseconds to every hook's start, and the mark
        # only tells rule sets apart; it guards against no one.
        joined = "\n".join(self.patterns).encode()
        crc = binascii.crc32(joined)
        self.fingerprint = f"r{RULES_REVISION}-{len(self.patterns)}-{crc:08x}"

    def applied_to(self, payload: object) -> bool:
        """Whether ``payload`` was redacted by these very rules (it carries their mark)."""
        return isinstance(payload, dict) and payload.get(REDACTED_MARK) == self.fingerprint

    def warm(self) -> None:
        """Compile every rule now (the daemon, at start), not on its first match."""
        for rule in RULES:
            _ = rule.pattern, rule.finders

    def redact_text(self, text: str) -> tuple[str, int]:
        """``text`` with every secret replaced by its marker, and how many were."""
        return self._redact(text, RULES)

    def _redact(self, text: str, rules: tuple[_Rule, ...]) -> tuple[str, int]:
        total = 0
        lowered: str | None = None
        for rule in rules if len(text) >= MIN_TEXT else ():
            if rule.folded:
                if lowered is None:
                    lowered = text.lower()
                haystack = lowered
            else:
                haystack = text
            starts = _trigger_positions(rule, haystack)
            if not starts:
                continue
            # Lowering changed the length (rare letters): then search the text all through.
            edits = _edits(rule, text, starts if len(haystack) == len(text) else None)
            if edits:
                total += len(edits)
                # A marker is lowercase: the lowered text takes the same edits, at the same
                # places, when lowering kept every place where it was.
                same = lowered is not None and len(lowered) == len(text)
                lowered = _splice(lowered, edits) if same and lowered is not None else None
                text = _splice(text, edits)
        for pattern in self._custom:
            text, count = _apply_custom(pattern, text)
            total += count
        return text, total

    def redact_value(self, value: Any) -> tuple[Any, int]:
        """``value`` (a decoded JSON payload) with every string in it redacted, keys too;
        the count of secrets replaced. Unchanged parts are the same objects."""
        texts: list[str] = []
        _collect(value, texts)
        # One look for every rule's triggers in all the strings at once: an event's dozen
        # short strings each looked through by every rule cost more than its whole hook.
        joined = "\n".join(texts)
        lowered = joined.lower()
        rules = tuple(
            rule
            for rule in RULES
            if any(trigger in (lowered if rule.folded else joined) for trigger in rule.triggers)
        )
        if not rules and not self._custom:
            return value, 0
        return self._walk(value, rules)

    def _walk(self, value: Any, rules: tuple[_Rule, ...]) -> tuple[Any, int]:
        if isinstance(value, str):
            return self._redact(value, rules)
        if isinstance(value, dict):
            total = 0
            out: dict[Any, Any] = {}
            for key, item in value.items():
                new_key, n_key = self._redact(key, rules) if isinstance(key, str) else (key, 0)
                new_item, n_item = self._walk(item, rules)
                out[new_key] = new_item
                total += n_key + n_item
            return (out, total) if total else (value, 0)
        if isinstance(value, list):
            total = 0
            items = []
            for item in value:
                new_item, n_item = self._walk(item, rules)
                items.append(new_item)
                total += n_item
            return (items, total) if total else (value, 0)
        return value, 0

    def may_hold_secret(self, raw: bytes) -> bool:
        """Whether the JSON text ``raw`` may hold a secret: False means no rule can match
        any string in it (a cheap screen before parsing and redacting it)."""
        if self._custom or _JSON_ESCAPE in raw:
            # A trigger may be written escaped (``\u0041KIA``): only the parsed text tells.
            return True
        lowered = raw.lower()
        return any(rule.in_bytes(lowered if rule.folded else raw) for rule in RULES)


def _collect(value: Any, into: list[str]) -> None:
    """Every string in ``value``, keys too, appended to ``into``."""
    if isinstance(value, str):
        into.append(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                into.append(key)
            _collect(item, into)
    elif isinstance(value, list):
        for item in value:
            _collect(item, into)


def _trigger_positions(rule: _Rule, haystack: str) -> list[int]:
    """Where ``rule``'s triggers start in ``haystack``, in order."""
    finders = rule.finders
    if len(finders) == 1:
        return [match.start() for match in finders[0].finditer(haystack)]
    found = [match.start() for finder in finders for match in finder.finditer(haystack)]
    found.sort()
    return found


def _edits(rule: _Rule, text: str, starts: list[int] | None) -> list[tuple[int, int, str]]:
    """Where ``rule`` finds a secret in ``text`` (a value that passes its check): each as
    ``(start, end, marker)``, in order. Matches are tried only at ``starts`` (where the
    rule's triggers are), or everywhere if None: a pattern that does not start with a literal
    would otherwise cost a try at every character."""
    pattern = rule.pattern
    if starts is None:
        matches: Iterable[re.Match[str]] = pattern.finditer(text)
    else:
        matches = _matches_at(pattern, text, starts)
    groups = rule.group.split("|") if isinstance(rule.group, str) else (rule.group,)
    edits: list[tuple[int, int, str]] = []
    for match in matches:
        group: int | str = 0
        for group in groups:
            if match.group(group) is not None:
                break
        value = match.group(group)
        if value is None or value.startswith(MARKER_PREFIX):
            continue
        start = match.start(group)
        if _inside_marker(text, start):
            continue
        if rule.check is not None and not rule.check(match, value):
            continue
        kind = rule.kind if isinstance(rule.kind, str) else rule.kind(match)
        edits.append((start, match.end(group), marker(kind)))
    return edits


def _inside_marker(text: str, at: int) -> bool:
    """Whether ``at`` is inside a marker an earlier rule put there (``[redacted:x-token]``
    must not be read as ``user:password``)."""
    before = text[max(0, at - 40) : at]
    opened = before.rfind(MARKER_PREFIX)
    return opened >= 0 and "]" not in before[opened:]


def _splice(text: str, edits: list[tuple[int, int, str]]) -> str:
    """``text`` with each ``(start, end, replacement)`` made (in order, not overlapping)."""
    pieces: list[str] = []
    done = 0
    for start, end, replacement in edits:
        pieces += (text[done:start], replacement)
        done = end
    pieces.append(text[done:])
    return "".join(pieces)


def _matches_at(pattern: re.Pattern[str], text: str, starts: list[int]) -> Iterator[re.Match[str]]:
    """The matches of ``pattern`` that start at one of ``starts``, not overlapping."""
    end = -1
    for start in starts:
        if start < end:
            continue
        match = pattern.match(text, start)
        if match is not None:
            end = match.end()
            yield match


def _apply_custom(pattern: re.Pattern[str], text: str) -> tuple[str, int]:
    count = 0
    named = SECRET_GROUP in pattern.groupindex

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        group: int | str = SECRET_GROUP if named and match.group(SECRET_GROUP) else 0
        if match.start(group) == match.end(group):
            return match.group(0)
        count += 1
        whole, start = match.group(0), match.start()
        return (
            whole[: match.start(group) - start]
            + marker(CUSTOM_KIND)
            + whole[match.end(group) - start :]
        )

    return pattern.sub(replace, text), count


def compile_pattern(source: str) -> re.Pattern[str]:
    """The user's pattern ``source``, compiled; ``SettingError`` saying why when it cannot
    be used."""
    try:
        compiled = re.compile(source)
    except re.error as exc:
        raise SettingError(f"{source!r} is not a regular expression ({exc})") from None
    if compiled.fullmatch("") is not None:
        raise SettingError(f"{source!r} matches empty text, so it would mark every gap")
    return compiled


# The built-in rules alone (shared: a redactor holds nothing but the user's patterns).
BUILT_IN: Final = Redactor()


def redactor(enabled: bool, patterns: Iterable[str] = ()) -> Redactor | None:
    """The redactor the settings ask for; None when redaction is off."""
    if not enabled:
        return None
    patterns = tuple(patterns)
    return Redactor(patterns) if patterns else BUILT_IN


def redact_text(text: str) -> tuple[str, int]:
    """``text`` with every secret the built-in rules know replaced, and how many were."""
    return BUILT_IN.redact_text(text)


def redact_payload(payload: Any) -> tuple[Any, int]:
    """A decoded payload with every string in it redacted by the built-in rules."""
    return BUILT_IN.redact_value(payload)
