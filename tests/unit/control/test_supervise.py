"""Restart backoff: doubling while a slot keeps crashing, reset once it ran stably."""

from __future__ import annotations

from pointsman.control.supervise import RESTART_MAX_DELAY, RESTART_MIN_DELAY, STABLE_AFTER, Backoff


def test_backoff_doubles_caps_and_resets() -> None:
    backoff = Backoff()
    delays = [backoff.next_delay(0, lived=0.1) for _ in range(12)]
    assert delays[0] == RESTART_MIN_DELAY
    assert delays[1] == 2 * RESTART_MIN_DELAY
    assert delays[-1] == RESTART_MAX_DELAY
    assert backoff.next_delay(1, lived=0.1) == RESTART_MIN_DELAY  # slots are independent
    assert backoff.next_delay(0, lived=STABLE_AFTER) == RESTART_MIN_DELAY
