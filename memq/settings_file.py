"""``MEMQ_HOME/settings.toml``: memq's settings file, read with ``tomllib`` and written whole.

Each key is a setting (``memq.env.SETTING_VARIABLES``: ``port`` for ``MEMQ_PORT``, ...), its
value a TOML string, number, boolean or, for ``skip_tools``, an array of strings::

    port = 40000
    linger = 2.5
    skip_tools = ["TodoWrite", "TodoRead"]

Reading turns each value into the text its variable would hold, so that one set of parsers
(``memq.env``) checks both. Writing replaces the file atomically (a temporary file beside it,
then ``os.replace``), mode 0600: it may hold an API key.

``memq hook`` reads the file on every event, and importing ``tomllib`` would cost it about a
third more start-up time. So what a read found is kept in ``settings.toml.cache.json`` beside
the file, with the exact text it was found in: a later read whose text is the same takes the
cache (JSON, which the hook has imported anyway), any other text is parsed again. Standard
library only.
"""

from __future__ import annotations

import contextlib
import json
import os

from memq.env import SETTING_VARIABLES, SETTINGS_FILE
from memq.exceptions import SettingError
from memq.file_sync import sync_directory

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Final

LIST_KEYS: Final = frozenset({"skip_tools", "redact_patterns"})
# Lists whose items are one a line in their variable's text, not comma-separated (a regular
# expression may hold a comma).
LINE_LIST_KEYS: Final = frozenset({"redact_patterns"})
CACHE_SUFFIX: Final = ".cache.json"
HEADER: Final = (
    "# memq settings. `memq config --global KEY VALUE` changes them (and rewrites this file);\n"
    "# an environment variable MEMQ_<KEY> overrides the key here.\n"
)


class ParsedFile:
    """A settings file's content, sorted by what memq can do with each key."""

    __slots__ = ("invalid", "unknown", "values")

    def __init__(
        self, values: dict[str, str], invalid: dict[str, str], unknown: tuple[str, ...]
    ) -> None:
        self.values = values  # variable name -> the value as its variable would spell it
        self.invalid = invalid  # variable name -> why its value cannot be used
        self.unknown = unknown  # keys that are no setting


def settings_path(home: str | os.PathLike[str]) -> str:
    """The settings file of the home ``home``."""
    return os.path.join(os.fspath(home), SETTINGS_FILE)


def load_variables(data: bytes, path: str) -> ParsedFile:
    """:func:`parse_variables`, through the cache beside the file: parsed only when ``data``
    is not the text the cache was made from (the cache is then remade, if it can be)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None  # parse_variables says what is wrong
    if text is not None:
        cached = _read_cache(path, text)
        if cached is not None:
            return cached
    parsed = parse_variables(data, path)
    _write_cache(path, data.decode("utf-8"), parsed)
    return parsed


def parse_variables(data: bytes, path: str) -> ParsedFile:
    """The settings in ``data`` (the bytes of the file at ``path``), by variable name.

    Raises:
        SettingError: ``data`` is not UTF-8 or not TOML (naming ``path`` and the line).
    """
    return variables_of(parse_table(data, path), path)


def variables_of(table: Mapping[str, object], path: str) -> ParsedFile:
    """The settings in ``table`` (the TOML table of the file at ``path``), by variable name."""
    values: dict[str, str] = {}
    invalid: dict[str, str] = {}
    unknown: list[str] = []
    for key, value in table.items():
        variable = SETTING_VARIABLES.get(key)
        if variable is None:
            unknown.append(key)
            continue
        try:
            values[variable] = as_text(key, value)
        except SettingError as exc:
            invalid[variable] = f"{key} = {_shown(value)}: {exc} (set in {path})"
    return ParsedFile(values, invalid, tuple(unknown))


def parse_table(data: bytes, path: str) -> dict[str, object]:
    """The TOML table in ``data``; ``SettingError`` naming ``path`` (and the line) if none."""
    import tomllib  # noqa: PLC0415 - the hook pays for it only when there is a file

    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise SettingError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingError(f"{path}: not valid TOML ({exc})") from None


def read_table(path: str) -> dict[str, object]:
    """The TOML table of the settings file at ``path``; empty when there is no file.

    Raises:
        SettingError: the file cannot be read (or is a symlink), or is not TOML.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise SettingError(f"{path}: cannot read it ({exc.strerror})") from None
    with open(fd, "rb") as handle:
        return parse_table(handle.read(), path)


def as_text(key: str, value: object) -> str:
    """A TOML value of setting ``key`` as its environment variable would spell it;
    ``SettingError`` saying why when no text stands for it."""
    if isinstance(value, bool):  # before int: a bool is an int
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    if isinstance(value, list) and key in LIST_KEYS:
        if not all(isinstance(item, str) for item in value):
            raise SettingError("every item must be a string")
        if key in LINE_LIST_KEYS:
            if any("\n" in item or "\r" in item for item in value):
                raise SettingError("an item cannot hold a line break")
            return "\n".join(value)
        if any("," in item for item in value):
            raise SettingError("an item cannot hold a comma")
        return ",".join(value)
    if isinstance(value, list):
        raise SettingError("an array, but this setting takes one value")
    raise SettingError(f"{_kind(value)} is not a value of any setting")


def render(table: Mapping[str, object]) -> str:
    """The text of a settings file holding ``table``: memq's settings in their usual order,
    then any other keys.

    Raises:
        SettingError: a value is not one memq writes (a table, a date: edit those by hand).
    """
    order = {key: n for n, key in enumerate(SETTING_VARIABLES)}
    keys = sorted(table, key=lambda key: (order.get(key, len(order)), key))
    return HEADER + "".join(f"{format_key(key)} = {format_value(table[key])}\n" for key in keys)


def format_key(key: str) -> str:
    """``key`` as a TOML key: bare when it can be, else quoted."""
    if key and all(c.isascii() and (c.isalnum() or c in "-_") for c in key):
        return key
    return _string(key)


def format_value(value: object) -> str:
    """``value`` in TOML. ``SettingError`` for a value memq does not write."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)  # also TOML for inf, -inf and nan
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list):
        return "[" + ", ".join(format_value(item) for item in value) + "]"
    raise SettingError(f"{_kind(value)} cannot be written back; edit the file by hand")


def write_table(path: str, table: Mapping[str, object]) -> None:
    """Replace the settings file at ``path`` with ``table``, atomically and mode 0600.

    Raises:
        SettingError: the file cannot be written (the old one is left as it was).
    """
    text = render(table)
    directory = os.path.dirname(path) or "."
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with open(fd, "wb") as handle:
                handle.write(text.encode("utf-8"))
                handle.flush()
                os.fchmod(handle.fileno(), 0o600)  # whatever the umask
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
    except OSError as exc:
        raise SettingError(f"{path}: cannot write it ({exc.strerror or exc})") from None
    sync_directory(directory, best_effort=True)
    _write_cache(path, text, variables_of(table, path))


def _read_cache(path: str, text: str) -> ParsedFile | None:
    """What the cache says the file holds, if it was made from ``text`` at ``path``."""
    try:
        fd = os.open(path + CACHE_SUFFIX, os.O_RDONLY | os.O_NOFOLLOW)
        with open(fd, "rb") as handle:
            cache = json.loads(handle.read())
        # Made from another text, or by a memq that knew other settings: not this file's.
        if (cache["toml"], cache["path"], cache["keys"]) != (text, path, list(SETTING_VARIABLES)):
            return None
        values, invalid, unknown = cache["values"], cache["invalid"], cache["unknown"]
    except (OSError, ValueError, TypeError, KeyError):
        return None  # no cache, or not one memq wrote: parse the file
    if not (_is_text_table(values) and _is_text_table(invalid) and isinstance(unknown, list)):
        return None
    if not all(isinstance(key, str) for key in unknown):
        return None
    return ParsedFile(values, invalid, tuple(unknown))


def _write_cache(path: str, text: str, parsed: ParsedFile) -> None:
    """Keep what ``text`` (the file at ``path``) holds beside it; quietly not, if it cannot."""
    cache = {
        "toml": text,
        "path": path,
        "keys": list(SETTING_VARIABLES),
        "values": parsed.values,
        "invalid": parsed.invalid,
        "unknown": list(parsed.unknown),
    }
    target = path + CACHE_SUFFIX
    temporary = f"{target}.{os.getpid()}.tmp"
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with open(fd, "w", encoding="utf-8") as handle:
            json.dump(cache, handle, ensure_ascii=False)
        os.replace(temporary, target)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)


def _is_text_table(value: object) -> bool:
    """Whether ``value`` maps setting variables to text, as a cache's tables do."""
    variables = SETTING_VARIABLES.values()
    return isinstance(value, dict) and all(
        key in variables and isinstance(item, str) for key, item in value.items()
    )


def _string(text: str) -> str:
    # A JSON string is a TOML basic string, once DEL (which JSON leaves bare) is escaped.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _shown(value: object) -> str:
    try:
        return format_value(value)
    except SettingError:
        return repr(value)


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"a {type(value).__name__}"  # datetime, date, time
