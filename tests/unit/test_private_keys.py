"""``<private>`` text is taken out of a payload's keys as well as its values
(memq.privacy.strip_private): a tool's structured input or output may have keys made of a
person's text, and nothing private may be stored or forwarded (issue 17)."""

from __future__ import annotations

from memq.privacy import strip_private


def test_private_parts_of_keys_go_too() -> None:
    payload = {
        "prompt": "keep <private>hidden</private>this",
        "tool_response": {"env": {"<private>hidden</private>HOME": "/home/dev"}},
        "list": [{"<PRIVATE>hidden": 1}],  # an unclosed tag hides the rest: fails closed
    }
    assert strip_private(payload) == {
        "prompt": "keep this",
        "tool_response": {"env": {"HOME": "/home/dev"}},
        "list": [{"": 1}],
    }
