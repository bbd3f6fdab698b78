from __future__ import annotations

from pathlib import Path

import pytest

from memq.config import SettingError, Settings
from memq.env import DEFAULT_PORT


class TestSettingsFromEnv:
    def test_defaults(self) -> None:
        """With nothing set, memq lives in ~/.memq on port 37778 with the extract processor."""
        settings = Settings.from_env({})
        assert settings.port == DEFAULT_PORT == 37778
        assert settings.home == Path("~/.memq").expanduser()
        assert settings.processor == "extract"
        assert settings.paths.database == settings.home / "memq.db"

    def test_reads_every_variable(self, tmp_path: Path) -> None:
        """Each MEMQ_* variable lands in its setting."""
        settings = Settings.from_env(
            {
                "MEMQ_HOME": str(tmp_path),
                "MEMQ_PORT": "40001",
                "MEMQ_CAPACITY": "2",
                "MEMQ_LINGER": "0.5",
                "MEMQ_SYNCHRONOUS": "normal",
                "MEMQ_LOG_LEVEL": "DEBUG",
            }
        )
        assert (settings.home, settings.port, settings.capacity) == (tmp_path, 40001, 2)
        assert (settings.linger, settings.synchronous, settings.log_level) == (
            0.5,
            "NORMAL",
            "debug",
        )

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("MEMQ_PORT", "http"),
            ("MEMQ_PORT", "70000"),
            ("MEMQ_LINGER", "-1"),
            ("MEMQ_LEASE", "0"),
            ("MEMQ_LINGER", "nan"),
            ("MEMQ_SYNCHRONOUS", "OFF"),
        ],
    )
    def test_a_bad_value_names_its_variable(self, name: str, value: str) -> None:
        """A setting memq cannot use is an error that says which variable to fix."""
        with pytest.raises(SettingError, match=name):
            Settings.from_env({name: value})
