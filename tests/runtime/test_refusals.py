"""RefusalDetector: a peer is dead after repeated "port unreachable" refusals in a window."""

from __future__ import annotations

import pytest

from rpcnet_runtime.client_protocol import RefusalDetector


def test_one_refusal_is_forgiven_two_close_together_are_not() -> None:
    detector = RefusalDetector(count=2, window=1.0)
    assert not detector.refused(10.0)
    assert detector.refused(10.4)


def test_refusals_further_apart_than_the_window_never_add_up() -> None:
    detector = RefusalDetector(count=2, window=1.0)
    assert not any(detector.refused(10.0 + 1.5 * i) for i in range(20))


def test_count_and_window_are_honoured() -> None:
    detector = RefusalDetector(count=3, window=0.5)
    assert [detector.refused(t) for t in (0.0, 0.2, 0.8, 0.9, 1.0)] == [
        False,
        False,
        False,  # 0.0 and 0.2 fell out of the window
        False,
        True,
    ]
    single = RefusalDetector(count=1, window=0.5)
    assert single.refused(0.0)


@pytest.mark.parametrize(("count", "window"), [(0, 1.0), (2, 0.0), (2, -1.0)])
def test_bad_settings_are_refused(count: int, window: float) -> None:
    with pytest.raises(ValueError):
        RefusalDetector(count=count, window=window)
