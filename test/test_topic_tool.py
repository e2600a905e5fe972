"""tools/topic.py: message formatting (unit) and list / echo / hz / info against a live publisher."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from harness import REPO
from humanoid_stack.msg import Detection, DetectionArray

sys.path.insert(0, str(REPO / "tools"))
import topic  # tools/ is a folder of scripts, not a package

TOOL = "tools/topic.py"
TOPIC = "/topictest/detections"


def make_detections() -> DetectionArray:
    msg = DetectionArray(image_width=640, image_height=480, model="yolo-test")
    msg.header.frame_id = "camera"
    msg.detections = [Detection(class_name="person", score=0.75, track_id=3), Detection(class_name="dog")]
    return msg


def test_format_message_nests_and_lists():
    text = "\n".join(topic.format_message(make_detections()))
    assert "header:\n  stamp:\n    sec: 0\n    nanosec: 0\n  frame_id: camera" in text
    assert "model: yolo-test" in text
    assert "detections:\n- class_id: 0\n  class_name: person\n  score: 0.75" in text
    assert "  track_id: 3\n  keypoints: []\n- class_id: 0\n  class_name: dog" in text


def test_format_message_truncates_long_arrays_and_hides_them_with_no_arr():
    msg = Image(height=10, width=10, encoding="mono8", step=10, data=bytes(range(100)))
    lines = topic.format_message(msg)
    data = next(line for line in lines if line.startswith("data:"))
    assert data.startswith("data: [0, 1, 2,")
    assert data.endswith(", 15, '... 84 more']")
    data = next(line for line in topic.format_message(msg, no_arr=True) if line.startswith("data:"))
    assert data == "data: '<sequence<uint8>, length: 100>'"


def test_period_stats():
    stats = topic.period_stats([0.0, 0.05, 0.10, 0.16])
    assert stats["rate"] == pytest.approx(3 / 0.16)
    assert stats["min"] == pytest.approx(0.05)
    assert stats["max"] == pytest.approx(0.06)
    assert stats["window"] == 4


@pytest.mark.integration
def test_list_echo_hz_info_against_a_20hz_publisher(ros, processes):
    node = ros.node("topictest_source")
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)  # the tool must adapt to it
    publisher = node.create_publisher(DetectionArray, TOPIC, qos)
    node.create_timer(0.05, lambda: publisher.publish(make_detections()))
    ros.wait_for_topic(TOPIC)

    # Discovery of another process here takes 0-2.5 s unloaded, more with five processes starting on
    # two cores: give list and info more than their default 3 s (hz takes this long anyway).
    runs = {
        "list": [TOOL, "list", "-t", "--spin-time", "5"],
        "echo": [TOOL, "echo", TOPIC, "--once"],
        "hz": [TOOL, "hz", TOPIC, "--duration", "4"],
        "info": [TOOL, "info", TOPIC, "-v", "--spin-time", "5"],
    }
    procs = {name: processes.start(args, f"topic_{name}") for name, args in runs.items()}  # in parallel
    logs = {}
    for name, proc in procs.items():
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail(f"topic.py {name} did not finish:\n{processes.log(proc)}")
        logs[name] = processes.log(proc)
        assert proc.returncode == 0, f"topic.py {name} exited {proc.returncode}:\n{logs[name]}"

    assert f"{TOPIC} [humanoid_stack/msg/DetectionArray]" in logs["list"].splitlines()
    assert "model: yolo-test" in logs["echo"]
    assert "  class_name: person" in logs["echo"]
    assert logs["echo"].count("---") == 1

    rates = [float(r) for r in re.findall(r"average rate: ([0-9.]+)", logs["hz"])]
    assert rates, logs["hz"]
    print(f"topic hz measured {rates[-1]:.2f} Hz for a 20 Hz timer")
    assert rates[-1] == pytest.approx(20.0, rel=0.15)

    assert "Type: humanoid_stack/msg/DetectionArray" in logs["info"]
    assert "Publisher count: 1" in logs["info"]
    assert re.search(r"Subscription count: \d+", logs["info"])
    assert "/topictest_source [humanoid_stack/msg/DetectionArray]" in logs["info"]
    assert "QoS: best_effort, volatile" in logs["info"]


@pytest.mark.integration
def test_echo_of_a_missing_topic_fails_clearly(processes):
    proc = processes.start([TOOL, "echo", "/topictest/nobody", "--timeout", "1"], "topic_echo")
    assert proc.wait(timeout=15) == 2
    assert "no publisher of /topictest/nobody appeared within 1 s" in processes.log(proc)
