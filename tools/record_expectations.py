#!/usr/bin/env python3
"""Record what perception_node must detect in the street bag, per frame: test/data/street_expected.json.

Every image of the bag (.cache/bags/street, built by tools/setup/build_bags.py) is decoded the way the
node decodes an Image message and run through perception_node.detector.load_detector (backend
ultralytics) with the node's default settings and tracking off: yolo11n.onnx, confidence 0.25,
iou 0.7, imgsz 640, tracker none, i.e. what test/test_replay.py starts the node with. The test
replays the bag into the node and compares its /perception/detections with this file frame by frame
(by header stamp).

Re-record only after a deliberate change of what the node should detect (the model, a default
setting, the Ultralytics or onnxruntime version, or the street bag itself), and commit the JSON with
that change:

    .venv/bin/python tools/setup/build_bags.py street
    .venv/bin/python tools/record_expectations.py
    git diff test/data/street_expected.json

A difference that the deliberate change does not explain is a regression to fix, not to re-record.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

from rclpy.serialization import deserialize_message
from rosbags.rosbag2 import Reader
from sensor_msgs.msg import Image
from tqdm import tqdm

from humanoid_common.images import image_to_numpy, to_bgr8
from perception_node.detector import Detection, Detector, load_detector
from perception_node.settings import PerceptionSettings

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BAG = ROOT / ".cache" / "bags" / "street"
DEFAULT_OUTPUT = ROOT / "test" / "data" / "street_expected.json"
IMAGE_TOPIC = "/camera/image_raw"
NODE_PARAMETERS = {"tracker": "none"}  # every other parameter at the node's default


def detection_entry(d: Detection) -> dict[str, Any]:
    return {
        "class": d.class_name,
        "score": round(d.score, 4),
        "box": [round(v, 2) for v in (d.center_x, d.center_y, d.size_x, d.size_y)],
    }


def record(bag: Path, detector: Detector) -> list[dict[str, Any]]:
    """One entry per image of the bag, in bag order: its header stamp (ns) and detections."""
    frames = []
    with Reader(bag) as reader:
        connections = [c for c in reader.connections if c.topic == IMAGE_TOPIC]
        if not connections:
            raise SystemExit(f"record_expectations: {bag} has no {IMAGE_TOPIC}")
        total = sum(c.msgcount for c in connections)
        messages = reader.messages(connections=connections)
        for _, _, data in tqdm(messages, total=total, unit="frame", desc="detect", file=sys.stderr):
            msg = deserialize_message(bytes(data), Image)
            result = detector.detect(to_bgr8(image_to_numpy(msg), msg.encoding))
            stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            frames.append(
                {"stamp_ns": stamp_ns, "detections": [detection_entry(d) for d in result.detections]}
            )
    return frames


def dump(about: dict[str, Any], frames: list[dict[str, Any]]) -> str:
    """JSON with one frame per line, so a re-recording shows as a readable diff."""
    body = ",\n".join(f"    {json.dumps(frame)}" for frame in frames)
    return f'{{\n  "about": {json.dumps(about)},\n  "frames": [\n{body}\n  ]\n}}\n'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--bag", type=Path, default=DEFAULT_BAG, help="street bag (default .cache/bags/street)"
    )
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT, help="JSON file to write")
    args = parser.parse_args(argv)
    if not (args.bag / "metadata.yaml").is_file():
        print(
            f"record_expectations: no bag at {args.bag}; run tools/setup/build_bags.py street",
            file=sys.stderr,
        )
        return 2
    config = PerceptionSettings.from_parameters(NODE_PARAMETERS).detector
    detector = load_detector(config)
    frames = record(args.bag, detector)
    about = {
        "bag": args.bag.name,
        "model": detector.model_name,
        "settings": {
            "confidence": config.confidence,
            "iou": config.iou,
            "imgsz": config.imgsz,
            "tracker": config.tracker,
        },
        "versions": {
            name: version(name) for name in ("ultralytics", "onnxruntime", "opencv-python-headless")
        },
        "recorded_with": "tools/record_expectations.py",
    }
    args.output.write_text(dump(about, frames))
    count = sum(len(f["detections"]) for f in frames)
    print(f"wrote {args.output}: {len(frames)} frames, {count} detections")
    return 0


if __name__ == "__main__":
    sys.exit(main())
