from __future__ import annotations

import pytest

from memq.queue import QueueSettings, Synchronous


class TestRetryDelay:
    def test_grows_by_the_backoff_factor_and_stops_at_the_cap(self) -> None:
        """Each failed attempt waits backoff times longer than the last, up to the cap."""
        settings = QueueSettings(retry_delay=1.0, retry_backoff=4.0, retry_delay_max=30.0)
        assert [settings.retry_delay_after(n) for n in (1, 2, 3, 4)] == [1.0, 4.0, 16.0, 30.0]

    def test_defaults_fail_a_poison_message_within_half_a_minute(self) -> None:
        """At the default 3 attempts the delays between them add up to well under 30 s."""
        settings = QueueSettings()
        waits = [settings.retry_delay_after(n) for n in range(1, settings.max_attempts)]
        assert sum(waits) < 30


class TestValidation:
    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("max_attempts", 0),
            ("retry_backoff", 0.5),
            ("lease", 0),
            ("change_check_interval", 0),
            ("retry_delay", -1),
            ("max_batch", 0),
        ],
    )
    def test_rejects_values_that_cannot_work(self, field: str, value: float) -> None:
        """A setting that would break the queue fails at construction, naming the field."""
        with pytest.raises(ValueError, match=field):
            QueueSettings(**{field: value})  # type: ignore[arg-type]

    def test_synchronous_accepts_its_name(self) -> None:
        """``synchronous`` may be given as text, e.g. from an environment variable."""
        assert QueueSettings(synchronous="NORMAL").synchronous is Synchronous.NORMAL  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="OFF"):
            QueueSettings(synchronous="OFF")  # type: ignore[arg-type]

    def test_stored_lease_outlasts_the_in_process_lease(self) -> None:
        """The watchdog only takes back what the consumer's own deadline did not settle."""
        settings = QueueSettings(lease=10)
        assert settings.stored_lease > settings.lease
