"""Action queue: threshold, merge modes, latency-aware drop, synchronous mode, re-timing."""

import numpy as np
import pytest

from vla_node.action_queue import ActionQueue, Merge, Mode, QueueConfig, resample_chunk


def chunk(start: float, n: int = 10, dim: int = 2) -> np.ndarray:
    return np.repeat(np.arange(start, start + n, dtype=float)[:, None], dim, axis=1)


def test_threshold_triggers_the_next_observation():
    queue = ActionQueue(10, QueueConfig(threshold=0.3))
    assert queue.wants_observation(0)  # empty
    queue.add_chunk(chunk(0), observation_tick=0, tick=0)
    popped = [queue.pop(t)[0] for t in range(6)]
    assert popped == [0, 1, 2, 3, 4, 5]
    assert queue.pending(6) == 4
    assert not queue.wants_observation(6)
    queue.pop(6)
    assert queue.pending(7) == 3
    assert queue.wants_observation(7)


def test_latency_aware_drop_of_steps_that_passed_while_thinking():
    queue = ActionQueue(10)
    queued = queue.add_chunk(chunk(100), observation_tick=5, tick=8)  # arrived 3 ticks late
    assert queued == 7
    assert queue.stats.dropped_late == 3
    assert queue.pop(8)[0] == 103  # step 3 belongs to tick 8
    assert queue.pop(9)[0] == 104


def test_replace_merge_takes_the_newest_chunk():
    queue = ActionQueue(10, QueueConfig(merge=Merge.REPLACE))
    queue.add_chunk(chunk(0), 0, 0)
    queue.add_chunk(chunk(50), observation_tick=4, tick=4)
    assert queue.stats.merged_steps == 6  # ticks 4..9 overlapped
    assert [queue.pop(t)[0] for t in (4, 5, 13)] == [50, 51, 59]


def test_weighted_merge_averages_overlapping_steps():
    queue = ActionQueue(10, QueueConfig(merge="weighted", new_chunk_weight=0.25))
    queue.add_chunk(chunk(0), 0, 0)
    queue.add_chunk(chunk(40), observation_tick=4, tick=4)
    assert queue.pop(4)[0] == pytest.approx(0.75 * 4 + 0.25 * 40)
    assert queue.pop(10)[0] == 46  # beyond the old chunk: new values only


def test_pop_passes_over_missed_ticks_and_holds_when_nothing_is_due():
    queue = ActionQueue(4)
    assert queue.pop(0) is None
    queue.add_chunk(chunk(0, 4), 0, 0)
    assert queue.pop(2)[0] == 2
    assert queue.stats.skipped == 2
    queue.pop(3)
    assert queue.pop(4) is None
    assert len(queue) == 0


def test_sync_mode_waits_for_an_empty_queue_and_starts_on_arrival():
    queue = ActionQueue(10, QueueConfig(mode=Mode.SYNC, threshold=0.9))
    queue.add_chunk(chunk(0), observation_tick=0, tick=6)  # robot held for 6 ticks: nothing dropped
    assert queue.stats.dropped_late == 0
    assert queue.pop(6)[0] == 0
    assert not queue.wants_observation(7)
    for t in range(7, 16):
        queue.pop(t)
    assert queue.wants_observation(16)


def test_reset_forgets_everything():
    queue = ActionQueue(10)
    queue.add_chunk(chunk(0), 0, 0)
    queue.reset()
    assert len(queue) == 0
    assert queue.pop(1) is None


def test_bad_configuration_and_chunks_are_rejected():
    with pytest.raises(ValueError, match="threshold"):
        QueueConfig(threshold=1.5)
    with pytest.raises(ValueError, match="median"):
        QueueConfig(merge="median")
    with pytest.raises(ValueError, match="horizon"):
        ActionQueue(3).add_chunk(np.zeros(3), 0, 0)


def test_resample_keeps_the_time_span():
    source = np.stack([np.arange(5.0), 2 * np.arange(5.0)], axis=1)  # 5 steps at 0.1 s: 0.4 s
    out = resample_chunk(source, 0.1, 0.05)
    assert out.shape == (9, 2)
    np.testing.assert_allclose(out[:, 0], np.arange(9) * 0.5)
    np.testing.assert_array_equal(resample_chunk(source, 0.1, 0.1), source)
