"""Key names of a queue: one hash tag per queue, so every script stays in one cluster slot."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from floodgate.jobs import GROUP, queue_keys


def test_names_follow_the_contract() -> None:
    keys = queue_keys("default")
    assert keys.stream == "floodgate:jobs:{default}:stream"
    assert keys.dead == "floodgate:jobs:{default}:dead"
    assert keys.delayed == "floodgate:jobs:{default}:delayed"
    assert keys.group == GROUP == "floodgate-workers"


@pytest.mark.parametrize("queue", ["default", "webhooks", "q-1.x_y"])
def test_all_keys_of_a_queue_share_one_slot(queue: str) -> None:
    keys = queue_keys(queue)
    slots = {key_slot(name.encode()) for name in (keys.stream, keys.dead, keys.delayed)}
    assert slots == {key_slot(queue.encode())}


@pytest.mark.parametrize("queue", ["", "a{b", "a}b", "a:b", "with space", "x" * 65])
def test_names_that_would_break_the_tag_are_refused(queue: str) -> None:
    with pytest.raises(ValueError, match="queue name"):
        queue_keys(queue)
