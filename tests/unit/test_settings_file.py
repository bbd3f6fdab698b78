"""MEMQ_HOME/settings.toml: reading it under the environment, writing it, and checking values
with the parsers the variables use; which settings a command checks; what install records."""

from __future__ import annotations

import argparse
import os
import re
import stat
import subprocess
import sys
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from memq import env as memq_env
from memq.cli.command_settings import command_settings
from memq.cli.parser import build_parser
from memq.cli.settings_commands import checked_value
from memq.cli.setup_commands import hook_home, record_environment, recorded_lines
from memq.config import SETTINGS, SETTINGS_BY_KEY, SettingError, Settings, settings_report
from memq.env import SETTING_VARIABLES, Source, environment
from memq.hooks.run import HookSettings
from memq.processors.llm import ANTHROPIC, LLMSettings
from memq.settings_file import (
    CACHE_SUFFIX,
    load_variables,
    read_table,
    render,
    write_table,
)
from tests.helpers.processes import project_env


def write(home: Path, text: str) -> Path:
    """A settings file with ``text`` in ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "settings.toml"
    path.write_text(text, encoding="utf-8")
    return path


class TestEnvironmentOverTheFile:
    def test_without_a_file_the_environment_alone(self, tmp_path: Path) -> None:
        """No file: the environment's values, the rest defaults, nothing from a file."""
        env = environment({"MEMQ_HOME": str(tmp_path), "MEMQ_PORT": "40001"})
        assert env.file == str(tmp_path / "settings.toml")
        assert env.from_file == {}
        settings = Settings.from_env(env)
        assert (settings.port, settings.linger) == (40001, 5.0)
        assert memq_env.source_of(env, "MEMQ_PORT") == Source.ENVIRONMENT
        assert memq_env.source_of(env, "MEMQ_LINGER") == Source.DEFAULT

    def test_the_file_gives_values_and_the_environment_wins(self, tmp_path: Path) -> None:
        """Every key is read; a set variable overrides its key; a blank one does not."""
        write(
            tmp_path,
            "port = 40002\nlinger = 0.5\ncapacity = 2\nsynchronous = 'normal'\n"
            'skip_tools = ["Read", "Grep"]\nlog_level = "debug"\n',
        )
        env = environment({"MEMQ_HOME": str(tmp_path), "MEMQ_CAPACITY": "3", "MEMQ_LINGER": "  "})
        settings = Settings.from_env(env)
        assert settings.port == 40002
        assert settings.linger == 0.5  # a blank variable leaves the file's value
        assert settings.capacity == 3
        assert settings.synchronous == "NORMAL"
        assert settings.skip_tools == frozenset({"Read", "Grep"})
        assert settings.log_level == "debug"
        assert memq_env.source_of(env, "MEMQ_PORT") == Source.FILE
        assert memq_env.source_of(env, "MEMQ_CAPACITY") == Source.ENVIRONMENT
        assert memq_env.source_of(env, "MEMQ_LEASE") == Source.DEFAULT

    def test_a_blank_skip_tools_variable_is_a_value(self, tmp_path: Path) -> None:
        """MEMQ_SKIP_TOOLS= means "record every tool", over whatever the file lists."""
        write(tmp_path, 'skip_tools = ["Read"]\n')
        env = environment({"MEMQ_HOME": str(tmp_path), "MEMQ_SKIP_TOOLS": ""})
        assert Settings.from_env(env).skip_tools == frozenset()
        assert memq_env.source_of(env, "MEMQ_SKIP_TOOLS") == Source.ENVIRONMENT

    def test_an_empty_array_records_every_tool(self, tmp_path: Path) -> None:
        write(tmp_path, "skip_tools = []\n")
        assert Settings.load({"MEMQ_HOME": str(tmp_path)}).skip_tools == frozenset()

    def test_not_toml_names_the_file_and_line(self, tmp_path: Path) -> None:
        path = write(tmp_path, "port = 40000\nlinger = \n")
        with pytest.raises(
            SettingError, match=rf"{re.escape(str(path))}: not valid TOML \(.*line 2"
        ):
            environment({"MEMQ_HOME": str(tmp_path)})

    def test_not_utf8_names_the_file(self, tmp_path: Path) -> None:
        tmp_path.joinpath("settings.toml").write_bytes(b"model = '\xff'\n")
        with pytest.raises(SettingError, match="not UTF-8"):
            environment({"MEMQ_HOME": str(tmp_path)})

    def test_a_symlink_is_not_followed(self, tmp_path: Path) -> None:
        """Files in MEMQ_HOME are memq's own: a link to elsewhere is refused, not read."""
        elsewhere = write(tmp_path / "elsewhere", "port = 40003\n")
        home = tmp_path / "home"
        home.mkdir()
        (home / "settings.toml").symlink_to(elsewhere)
        with pytest.raises(SettingError, match="cannot read it"):
            environment({"MEMQ_HOME": str(home)})

    def test_a_value_of_the_wrong_type_fails_only_its_setting(self, tmp_path: Path) -> None:
        """A table where a number goes: reading that setting fails, naming key and file;
        every other setting reads as usual."""
        path = write(tmp_path, "port = 40004\n[linger]\nx = 1\n")
        env = environment({"MEMQ_HOME": str(tmp_path)})
        assert Settings.from_env(env, only={"port"}).port == 40004
        where = re.escape(str(path))
        with pytest.raises(
            SettingError, match=rf"^linger = .*: a table is not .*\(set in {where}\)$"
        ):
            Settings.from_env(env)

    def test_an_array_is_only_for_skip_tools(self, tmp_path: Path) -> None:
        write(tmp_path, "model = ['a', 'b']\n")
        env = environment({"MEMQ_HOME": str(tmp_path)})
        with pytest.raises(SettingError, match="an array, but this setting takes one value"):
            SETTINGS_BY_KEY["model"].parse(env)

    def test_keys_that_are_no_setting_are_listed(self, tmp_path: Path) -> None:
        write(tmp_path, "prot = 40000\nhome = '/elsewhere'\nport = 40005\n")
        env = environment({"MEMQ_HOME": str(tmp_path)})
        assert env.unknown == ("prot", "home")
        assert Settings.from_env(env).port == 40005

    def test_home_comes_from_the_environment_only(self, tmp_path: Path) -> None:
        """The file lives in the home, so a home in it is a key like any unknown one."""
        write(tmp_path, "home = '/elsewhere'\n")
        assert Settings.load({"MEMQ_HOME": str(tmp_path)}).home == tmp_path


class TestErrorsNameTheirSource:
    @pytest.mark.parametrize(
        ("key", "text", "problem"),
        [
            ("port", "'http'", "is not a whole number"),
            ("port", "70000", "is outside 1..65535"),
            ("linger", "-1", "must be a finite non-negative number"),
            ("lease", "0", "must be a finite positive number"),
            ("synchronous", "'OFF'", "is not one of FULL, NORMAL"),
        ],
    )
    def test_a_bad_value_in_the_file_names_key_and_file(
        self, tmp_path: Path, key: str, text: str, problem: str
    ) -> None:
        path = write(tmp_path, f"{key} = {text}\n")
        where = re.escape(str(path))
        with pytest.raises(
            SettingError, match=rf"^{key} = .* {re.escape(problem)} \(set in {where}\)$"
        ):
            Settings.load({"MEMQ_HOME": str(tmp_path)})

    def test_a_bad_variable_says_it_is_the_environment(self, tmp_path: Path) -> None:
        write(tmp_path, "linger = 2\n")
        with pytest.raises(
            SettingError, match=r"^MEMQ_LINGER=-1 must be .* \(set in the environment\)$"
        ):
            Settings.load({"MEMQ_HOME": str(tmp_path), "MEMQ_LINGER": "-1"})

    def test_the_environment_overrides_a_bad_value_in_the_file(self, tmp_path: Path) -> None:
        write(tmp_path, "linger = -1\n")
        assert Settings.load({"MEMQ_HOME": str(tmp_path), "MEMQ_LINGER": "1"}).linger == 1.0


class TestOnlyTheSettingsUsed:
    def test_a_bad_setting_outside_only_keeps_its_default(self) -> None:
        """MEMQ_LINGER=-1 does not stop a command that never lingers."""
        settings = Settings.from_env({"MEMQ_LINGER": "-1", "MEMQ_PORT": "40006"}, only={"port"})
        assert (settings.linger, settings.port) == (5.0, 40006)

    def test_a_bad_setting_in_only_is_refused(self) -> None:
        with pytest.raises(SettingError, match="MEMQ_PORT"):
            Settings.from_env({"MEMQ_PORT": "abc"}, only={"port"})

    def test_without_only_everything_is_checked(self) -> None:
        with pytest.raises(SettingError, match="MEMQ_LINGER"):
            Settings.from_env({"MEMQ_LINGER": "-1"})

    @pytest.mark.parametrize(
        ("argv", "refused"),
        [
            (["status"], False),
            (["search", "x"], False),
            (["stop"], False),
            (["serve"], True),
        ],
    )
    def test_commands(self, tmp_path: Path, argv: list[str], refused: bool) -> None:
        """status, search and stop do not linger; serve does."""
        parsed = build_parser().parse_args(argv)
        environ = {"MEMQ_HOME": str(tmp_path), "MEMQ_LINGER": "-1"}
        if refused:
            with pytest.raises(SettingError, match=r"MEMQ_LINGER=-1 .*\(set in the environment"):
                command_settings(parsed, environ)
        else:
            assert command_settings(parsed, environ).linger == 5.0

    def test_uninstall_needs_no_readable_file(self, tmp_path: Path) -> None:
        write(tmp_path, "port = \n")
        parsed = argparse.Namespace(command="uninstall")
        assert command_settings(parsed, {"MEMQ_HOME": str(tmp_path)}).home == tmp_path

    def test_unknown_keys_stop_the_daemon_and_warn_the_rest(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        write(tmp_path, "prot = 40000\n")
        environ = {"MEMQ_HOME": str(tmp_path)}
        with pytest.raises(SettingError, match="no setting is called prot"):
            command_settings(argparse.Namespace(command="serve"), environ)
        command_settings(argparse.Namespace(command="status"), environ)
        assert "warning:" in capsys.readouterr().err


class TestWriting:
    @pytest.mark.parametrize(
        "value",
        [
            0,
            40000,
            -3,
            0.5,
            1e-05,
            1e20,
            True,
            False,
            "",
            "plain",
            'quote " and backslash \\ and \\n',
            "new\nline\ttab\rreturn\x00nul\x1fus\x7fdel",
            "ünïcødé 😀 \u2028",
            ["TodoWrite", "Read"],
            [],
        ],
    )
    def test_what_is_written_reads_back_the_same(self, tmp_path: Path, value: object) -> None:
        text = render({"model": value})
        assert tomllib.loads(text) == {"model": value}

    def test_memq_keys_in_order_then_others_kept(self) -> None:
        text = render({"zzz": 1, "linger": 2.0, "port": 40000})
        lines = [line for line in text.splitlines() if not line.startswith("#")]
        assert lines == ["port = 40000", "linger = 2.0", "zzz = 1"]

    def test_a_table_cannot_be_written_back(self, tmp_path: Path) -> None:
        with pytest.raises(SettingError, match="by hand"):
            render({"x": {"y": 1}})

    def test_written_0600_atomically_whatever_the_umask(self, tmp_path: Path) -> None:
        path = tmp_path / "settings.toml"
        path.write_text("port = 1\n")
        path.chmod(0o644)
        old = os.umask(0)
        try:
            write_table(str(path), {"port": 40007, "api_key": "sk-secret"})
        finally:
            os.umask(old)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert read_table(str(path)) == {"port": 40007, "api_key": "sk-secret"}
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "settings.toml",
            "settings.toml" + CACHE_SUFFIX,
        ]
        assert stat.S_IMODE((tmp_path / f"settings.toml{CACHE_SUFFIX}").stat().st_mode) == 0o600

    def test_a_symlink_is_replaced_not_written_through(self, tmp_path: Path) -> None:
        target = tmp_path / "target.toml"
        target.write_text("port = 1\n")
        link = tmp_path / "settings.toml"
        link.symlink_to(target)
        write_table(str(link), {"port": 40008})
        assert target.read_text() == "port = 1\n"
        assert not link.is_symlink()
        assert read_table(str(link)) == {"port": 40008}

    def test_an_unwritable_place_is_a_setting_error(self, tmp_path: Path) -> None:
        with pytest.raises(SettingError, match="cannot write it"):
            write_table(str(tmp_path / "missing" / "settings.toml"), {"port": 1})


class TestCache:
    def test_an_unchanged_file_is_read_without_tomllib(self, tmp_path: Path) -> None:
        """The hook pays for tomllib once after a change, not on every event."""
        write(tmp_path, "port = 40009\n")
        probe = (
            "import sys; from memq import env; e = env.environment({'MEMQ_HOME': sys.argv[1]}); "
            "print(e['MEMQ_PORT'], 'tomllib' in sys.modules)"
        )

        def run() -> str:
            done = subprocess.run(
                [sys.executable, "-c", probe, str(tmp_path)],
                env=project_env(),
                capture_output=True,
                text=True,
                check=True,
            )
            return done.stdout.strip()

        assert run() == "40009 True"  # first read: parsed, and the cache made
        assert run() == "40009 False"
        assert run() == "40009 False"

    def test_a_changed_text_is_read_again_whatever_its_times(self, tmp_path: Path) -> None:
        """The cache is keyed on the text itself: an edit of the same size within the same
        clock tick is still seen."""
        path = write(tmp_path, "port = 40010\n")
        load_variables(path.read_bytes(), str(path))
        times = path.stat()
        path.write_text("port = 40011\n")
        os.utime(path, ns=(times.st_atime_ns, times.st_mtime_ns))
        assert load_variables(path.read_bytes(), str(path)).values == {"MEMQ_PORT": "40011"}

    @pytest.mark.parametrize(
        "cache",
        [
            "not json",
            "[]",
            '{"toml": "port = 40012\\n"}',
            '{"toml": "port = 40012\\n", "path": "P", "keys": "K", "values": {"MEMQ_PORT": 1},'
            ' "invalid": {}, "unknown": []}',
            '{"toml": "port = 40012\\n", "path": "P", "keys": "K", "values": {"EVIL": "1"},'
            ' "invalid": {}, "unknown": []}',
        ],
    )
    def test_a_cache_memq_did_not_write_is_ignored(self, tmp_path: Path, cache: str) -> None:
        path = write(tmp_path, "port = 40012\n")
        keys = "[" + ", ".join(f'"{key}"' for key in SETTING_VARIABLES) + "]"
        cache = cache.replace('"P"', f'"{path}"').replace('"K"', keys)
        Path(f"{path}{CACHE_SUFFIX}").write_text(cache)
        assert load_variables(path.read_bytes(), str(path)).values == {"MEMQ_PORT": "40012"}

    def test_a_cache_of_another_home_is_ignored(self, tmp_path: Path) -> None:
        """A home copied elsewhere: messages must name the file where it is now."""
        old = write(tmp_path / "old", "linger = -1\n")
        load_variables(old.read_bytes(), str(old))
        new = write(tmp_path / "new", "linger = -1\n")
        Path(f"{new}{CACHE_SUFFIX}").write_bytes(Path(f"{old}{CACHE_SUFFIX}").read_bytes())
        with pytest.raises(SettingError, match=re.escape(str(new))):
            Settings.load({"MEMQ_HOME": str(new.parent)})


class TestCheckedValue:
    @pytest.mark.parametrize(
        ("key", "text", "value"),
        [
            ("port", "40013", 40013),
            ("linger", "2", 2.0),
            ("synchronous", "normal", "NORMAL"),
            ("skip_tools", "Read, Grep,Read", ["Read", "Grep"]),
            ("skip_tools", "", []),
            ("disabled", "yes", True),
            ("model", " claude-x ", "claude-x"),
            ("base_url", "http://localhost:11434/v1", "http://localhost:11434/v1"),
            ("processor", "openai", "openai"),
        ],
    )
    def test_values_become_toml(self, key: str, text: str, value: object) -> None:
        assert checked_value(SETTINGS_BY_KEY[key], text) == value

    @pytest.mark.parametrize(
        ("key", "text", "message"),
        [
            ("port", "70000", "port = 70000 is outside 1..65535"),
            ("linger", "-1", "linger = -1 must be a finite non-negative number"),
            ("capacity", "many", "capacity = 'many' is not a whole number"),
            ("base_url", "localhost", "must start with http:// or https://"),
            ("processor", "gpt", "no processor"),
            ("port", " ", "give port a value"),
        ],
    )
    def test_bad_values_are_refused_by_the_variables_parsers(
        self, key: str, text: str, message: str
    ) -> None:
        with pytest.raises(SettingError, match=message):
            checked_value(SETTINGS_BY_KEY[key], text)


class TestRecordEnvironment:
    def test_records_what_the_environment_changes(self, tmp_path: Path) -> None:
        """Values that differ from the file's (or the default) are written; equal ones, the
        key and switches are not, and are named."""
        home = tmp_path / "home"
        write(home, "capacity = 2\nlinger = 0.5\n# a comment\n")
        environ = {
            "MEMQ_HOME": str(home),
            "MEMQ_PORT": "40014",
            "MEMQ_LINGER": "0.5",  # as the file already says
            "MEMQ_LEASE": "120",  # the default
            "MEMQ_SKIP_TOOLS": "",
            "MEMQ_API_KEY": "sk-secret",
            "MEMQ_DISABLED": "1",
        }
        recorded = record_environment(Settings.load(environ), environ)
        assert recorded.written == {"port": 40014, "skip_tools": []}
        assert recorded.left_out == ("MEMQ_DISABLED", "MEMQ_API_KEY")
        assert read_table(str(home / "settings.toml")) == {
            "port": 40014,
            "capacity": 2,
            "linger": 0.5,
            "skip_tools": [],
        }
        lines = "\n".join(recorded_lines(recorded))
        assert "port = 40014" in lines
        assert "sk-secret" not in lines
        assert "MEMQ_API_KEY is set here but not recorded" in lines

    def test_a_default_from_the_environment_replaces_the_files_value(self, tmp_path: Path) -> None:
        """The hook must see what this shell sees, even when that is the default."""
        write(tmp_path, "linger = 0.5\n")
        environ = {"MEMQ_HOME": str(tmp_path), "MEMQ_LINGER": "5"}
        assert record_environment(Settings.load(environ), environ).written == {"linger": 5.0}

    def test_a_secret_the_file_already_holds_is_not_mentioned(self, tmp_path: Path) -> None:
        write(tmp_path, "api_key = 'sk-same'\n")
        environ = {"MEMQ_HOME": str(tmp_path), "MEMQ_API_KEY": "sk-same"}
        recorded = record_environment(Settings.load(environ), environ)
        assert (recorded.written, recorded.left_out) == ({}, ())

    def test_nothing_to_record_writes_no_file(self, tmp_path: Path) -> None:
        environ = {"MEMQ_HOME": str(tmp_path / "home"), "MEMQ_PORT": str(memq_env.DEFAULT_PORT)}
        recorded = record_environment(Settings.load(environ), environ)
        assert recorded.written == {}
        assert not (tmp_path / "home").exists()

    def test_a_bad_variable_is_refused_and_nothing_written(self, tmp_path: Path) -> None:
        path = write(tmp_path, "capacity = 2\n")
        environ = {"MEMQ_HOME": str(tmp_path), "MEMQ_PORT": "40015", "MEMQ_LINGER": "-1"}
        with pytest.raises(SettingError, match=r"MEMQ_LINGER=-1 .*\(set in the environment"):
            record_environment(Settings.from_env(environment(environ), only=()), environ)
        assert path.read_text() == "capacity = 2\n"

    def test_the_hook_is_told_a_home_only_when_not_the_default(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("HOME", str(tmp_path))
        assert hook_home(Settings.from_env({})) is None
        assert hook_home(Settings.from_env({"MEMQ_HOME": str(tmp_path / ".memq")})) is None
        assert hook_home(Settings.from_env({"MEMQ_HOME": str(tmp_path / "m")})) == str(
            tmp_path / "m"
        )


class TestReport:
    def test_each_setting_with_its_source_and_errors(self, tmp_path: Path) -> None:
        write(tmp_path, "port = 40016\napi_key = 'sk-secret'\n")
        env = environment({"MEMQ_HOME": str(tmp_path), "MEMQ_LINGER": "-1"})
        report = settings_report(env)
        assert list(report) == ["home", *(spec.key for spec in SETTINGS)]
        assert report["home"] == {
            "value": str(tmp_path),
            "source": "environment",
            "variable": "MEMQ_HOME",
        }
        assert report["port"] == {
            "value": 40016,
            "source": "settings file",
            "variable": "MEMQ_PORT",
        }
        assert report["linger"]["source"] == "environment"
        assert report["linger"]["error"] == (
            "MEMQ_LINGER=-1 must be a finite non-negative number (set in the environment)"
        )
        assert report["capacity"] == {"value": 4, "source": "default", "variable": "MEMQ_CAPACITY"}
        assert report["api_key"]["value"] == "(hidden)"
        assert "sk-secret" not in repr(report)
        assert report["skip_tools"]["value"] == sorted(memq_env.DEFAULT_SKIP_TOOLS)


class TestOneTableOfSettings:
    def test_every_key_has_a_spec_and_a_variable(self) -> None:
        """The file's keys, the variables and the parsers are one list."""
        assert [spec.key for spec in SETTINGS] == list(SETTING_VARIABLES)
        assert all(spec.variable.startswith("MEMQ_") for spec in SETTINGS)

    def test_every_settings_field_has_its_spec(self) -> None:
        own = {"home", "database", "ephemeral", "environment"}
        names = {f.name for f in fields(Settings)} - own
        assert names == {spec.field for spec in SETTINGS if spec.field}

    def test_defaults_agree_with_the_code_that_reads_them(self) -> None:
        """The hook's and the model processors' defaults are what status shows."""
        hook = HookSettings({})
        report = settings_report({})
        assert report["hook_connect_timeout"]["value"] == hook.connect_timeout
        assert report["hook_timeout"]["value"] == hook.read_timeout
        assert report["llm_timeout"]["value"] == memq_env.DEFAULT_LLM_TIMEOUT
        assert report["llm_max_tokens"]["value"] == memq_env.DEFAULT_LLM_MAX_TOKENS

    def test_the_model_processors_read_the_file(self, tmp_path: Path) -> None:
        """The daemon hands the processors the environment laid over the file."""
        write(tmp_path, "api_key = 'sk-from-file'\nmodel = 'claude-x'\nllm_timeout = 7\n")
        settings = Settings.load({"MEMQ_HOME": str(tmp_path)})
        assert settings.environment is not None
        llm = LLMSettings.from_env(ANTHROPIC, settings.environment)
        assert (llm.api_key, llm.model, llm.timeout) == ("sk-from-file", "claude-x", 7.0)
