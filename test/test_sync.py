"""Tests for humanoid_common.sync (approximate-time synchroniser and its rclpy adapter)."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pytest
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String

from harness import RosHarness, wait_for
from humanoid_common.sync import ApproximateTimeSync, RosApproximateTimeSync, stamp_to_ns

MS = 1_000_000  # nanoseconds per millisecond


class Recorder:
    """Callback that records every delivered set."""

    def __init__(self) -> None:
        self.sets: list[tuple[Any, ...]] = []

    def __call__(self, *msgs: Any) -> None:
        self.sets.append(msgs)


def make(
    num_inputs: int = 2, queue_size: int = 10, slop_s: float = 0.05
) -> tuple[ApproximateTimeSync, Recorder]:
    rec = Recorder()
    return ApproximateTimeSync(num_inputs, rec, queue_size=queue_size, slop_s=slop_s), rec


def test_exact_match_pairs() -> None:
    sync, rec = make()
    for k in range(5):
        sync.add(0, k * 100 * MS, f"a{k}")
        sync.add(1, k * 100 * MS, f"b{k}")
    assert rec.sets == [(f"a{k}", f"b{k}") for k in range(5)]
    assert sync.delivered == 5
    assert sync.queued(0) == sync.queued(1) == 0


def test_callback_order_follows_inputs_not_arrival() -> None:
    sync, rec = make()
    sync.add(1, 10 * MS, "b")
    sync.add(0, 10 * MS, "a")
    assert rec.sets == [("a", "b")]


def test_within_slop_matches_outside_does_not() -> None:
    sync, rec = make(slop_s=0.010)
    sync.add(0, 100 * MS, "a")
    sync.add(1, 111 * MS, "b-far")  # 11 ms > 10 ms slop
    assert rec.sets == []
    sync.add(1, 110 * MS, "b-edge")  # out of order, exactly at the slop: inclusive
    assert rec.sets == [("a", "b-edge")]


def test_zero_slop_needs_identical_stamps() -> None:
    sync, rec = make(slop_s=0.0)
    sync.add(0, 5, "a")
    sync.add(1, 6, "b1")
    assert rec.sets == []
    sync.add(1, 5, "b0")
    assert rec.sets == [("a", "b0")]


def test_prefers_smallest_spread() -> None:
    sync, rec = make(slop_s=0.05)
    sync.add(1, 60 * MS, "b60")
    sync.add(1, 95 * MS, "b95")
    sync.add(1, 130 * MS, "b130")
    sync.add(0, 100 * MS, "a100")
    assert rec.sets == [("a100", "b95")]
    # b60 (older than the used b95) is discarded unused; b130 is kept for the next frame.
    assert sync.superseded == 1
    assert sync.queued(1) == 1
    sync.add(0, 133 * MS, "a133")
    assert rec.sets[-1] == ("a133", "b130")


def test_ties_prefer_newer_stamps() -> None:
    sync, rec = make()
    sync.add(1, 95 * MS, "b95")
    sync.add(1, 105 * MS, "b105")
    sync.add(0, 100 * MS, "a100")
    assert rec.sets == [("a100", "b105")]


def test_three_inputs() -> None:
    sync, rec = make(num_inputs=3, slop_s=0.02)
    sync.add(0, 100 * MS, "a")
    sync.add(1, 112 * MS, "b")
    assert rec.sets == []
    sync.add(2, 125 * MS, "c-far")  # within slop of b but 25 ms from a
    assert rec.sets == []
    sync.add(2, 118 * MS, "c")  # spread 18 ms
    assert rec.sets == [("a", "b", "c")]
    assert sync.queued(0) == sync.queued(1) == 0
    assert sync.queued(2) == 1  # c-far is newer than c and stays


def test_three_inputs_pick_the_tightest_combination() -> None:
    sync, rec = make(num_inputs=3, slop_s=0.05)
    for stamp in (70, 98, 120):
        sync.add(0, stamp * MS, f"a{stamp}")
    for stamp in (80, 101):
        sync.add(2, stamp * MS, f"c{stamp}")
    sync.add(1, 100 * MS, "b100")
    assert rec.sets == [("a98", "b100", "c101")]


def test_out_of_order_arrivals() -> None:
    sync, rec = make(slop_s=0.005)
    # Input 0 arrives in scrambled stamp order; input 1 later, in order.
    for stamp in (40, 10, 30, 20):
        sync.add(0, stamp * MS, f"a{stamp}")
    assert rec.sets == []
    for stamp in (11, 21, 31, 41):
        sync.add(1, stamp * MS, f"b{stamp}")
    assert rec.sets == [("a10", "b11"), ("a20", "b21"), ("a30", "b31"), ("a40", "b41")]


def test_late_message_is_rejected_not_delivered_twice() -> None:
    sync, rec = make()
    sync.add(0, 100 * MS, "a100")
    sync.add(1, 100 * MS, "b100")
    # The same stamps again (a re-sent message) and an older one: never delivered.
    sync.add(0, 100 * MS, "a100-again")
    sync.add(1, 100 * MS, "b100-again")
    sync.add(0, 90 * MS, "a90")
    assert rec.sets == [("a100", "b100")]
    assert sync.late == 3
    sync.add(0, 110 * MS, "a110")
    sync.add(1, 111 * MS, "b111")
    assert rec.sets == [("a100", "b100"), ("a110", "b111")]


def test_no_duplicate_delivery_in_dense_streams() -> None:
    sync, rec = make(queue_size=5, slop_s=0.02)
    rng = np.random.default_rng(1)
    stamps = [(0, t + int(rng.integers(0, 3 * MS))) for t in range(0, 2000 * MS, 10 * MS)]
    stamps += [(1, t + int(rng.integers(0, 3 * MS))) for t in range(0, 2000 * MS, 7 * MS)]
    # Random delivery delays of 0-15 ms reorder messages within and across inputs.
    arrivals = sorted((stamp + int(rng.integers(0, 15 * MS)), index, stamp) for index, stamp in stamps)
    for _, index, stamp in arrivals:
        sync.add(index, stamp, (index, stamp))
    used = [m for s in rec.sets for m in s]
    assert len(rec.sets) > 50
    assert len(used) == len(set(used))
    for a, b in rec.sets:
        assert abs(a[1] - b[1]) <= 20 * MS
    for i in (0, 1):
        stamps = [s[i][1] for s in rec.sets]
        assert stamps == sorted(stamps)  # delivered stamps never go backwards


def test_bounded_queue_counts_drops() -> None:
    sync, rec = make(queue_size=3, slop_s=0.01)
    for k in range(10):
        sync.add(0, k * 100 * MS, k)
    assert sync.queued(0) == 3
    assert sync.dropped == 7
    # Only the last three are still available.
    sync.add(1, 200 * MS, "old")
    assert rec.sets == []
    sync.add(1, 800 * MS, "new")
    assert rec.sets == [(8, "new")]
    assert sync.dropped == 7


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="num_inputs must be at least 2, got 1"):
        ApproximateTimeSync(1, print)
    with pytest.raises(ValueError, match="queue_size must be at least 1, got 0"):
        ApproximateTimeSync(2, print, queue_size=0)
    with pytest.raises(ValueError, match="slop_s must be >= 0"):
        ApproximateTimeSync(2, print, slop_s=-0.1)
    sync, _ = make()
    with pytest.raises(IndexError, match="input index 2 out of range for 2 inputs"):
        sync.add(2, 0, "x")


def test_stream_camera_pairs_with_nearest_joint_state() -> None:
    """30 Hz camera + 100 Hz joints, jittered stamps and realistic delivery latency."""
    rng = np.random.default_rng(42)
    duration_ns = 5_000 * MS
    cam_stamps = np.arange(0, duration_ns, 33_333_333)
    cam_stamps += rng.integers(-2 * MS, 2 * MS, size=cam_stamps.size)
    joint_stamps = np.arange(3 * MS, duration_ns, 10 * MS)
    joint_stamps += rng.integers(-1 * MS, 1 * MS, size=joint_stamps.size)
    # Cameras deliver 20-35 ms after exposure, joint states 0.5-2 ms after sampling.
    events = [(int(t + rng.integers(20 * MS, 35 * MS)), 0, int(t)) for t in cam_stamps]
    events += [(int(t + rng.integers(MS // 2, 2 * MS)), 1, int(t)) for t in joint_stamps]
    events.sort()

    sync, rec = make(queue_size=10, slop_s=0.02)
    for _, index, stamp in events:
        sync.add(index, stamp, stamp)

    assert len(rec.sets) == len(cam_stamps)
    for cam, joint in rec.sets:
        nearest = int(joint_stamps[np.argmin(np.abs(joint_stamps - cam))])
        assert joint == nearest, f"camera {cam} paired with {joint}, nearest joint is {nearest}"
    assert sync.dropped == 0
    assert sync.late == 0


def test_stamp_to_ns() -> None:
    img = Image()
    img.header.stamp.sec = 3
    img.header.stamp.nanosec = 5
    assert stamp_to_ns(img.header.stamp) == 3_000_000_005


def test_adapter_rejects_headerless_type() -> None:
    class FakeNode:
        def create_subscription(self, *args: Any, **kwargs: Any) -> None:
            raise AssertionError("must not subscribe")

    with pytest.raises(TypeError, match="String on /chatter has no header"):
        RosApproximateTimeSync(FakeNode(), [(Image, "/image", 10), (String, "/chatter", 10)], print)  # type: ignore[arg-type]


@pytest.mark.integration
def test_ros_adapter_delivers_pairs(ros: RosHarness) -> None:
    suffix = uuid.uuid4().hex[:8]
    image_topic, joint_topic = f"/sync_test_{suffix}/image", f"/sync_test_{suffix}/joints"
    node = ros.node(f"sync_test_{suffix}")
    rec = Recorder()
    synced = RosApproximateTimeSync(
        node, [(Image, image_topic, 10), (JointState, joint_topic, 10)], rec, slop_s=0.01
    )
    image_pub = node.create_publisher(Image, image_topic, 10)
    joint_pub = node.create_publisher(JointState, joint_topic, 10)
    wait_for(
        lambda: image_pub.get_subscription_count() and joint_pub.get_subscription_count(), 5.0, "subscribers"
    )

    for k in range(1, 4):
        img, joints = Image(), JointState()
        img.header.stamp.sec = joints.header.stamp.sec = k
        joints.header.stamp.nanosec = 4 * MS  # 4 ms apart: within slop
        image_pub.publish(img)
        joint_pub.publish(joints)
        wait_for(lambda k=k: len(rec.sets) >= k, 5.0, f"synchronised set {k}")

    assert [(i.header.stamp.sec, j.header.stamp.sec) for i, j in rec.sets] == [(1, 1), (2, 2), (3, 3)]
    assert all(isinstance(i, Image) and isinstance(j, JointState) for i, j in rec.sets)
    synced.destroy()
    assert synced.subscriptions == []
