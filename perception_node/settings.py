"""The node's parameters as data: names, defaults, descriptions, and validation into PerceptionSettings.

The ROS shell declares exactly the parameters of PARAMETERS (config/perception.yaml lists the same
defaults; a test keeps them equal) and hands their values to ``PerceptionSettings.from_parameters``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from humanoid_common.assets import AssetError, model_file
from humanoid_common.config import config_dir
from perception_node.cameras import CameraNameError, CameraTopics, camera_topics
from perception_node.detector import BACKENDS, TASKS, DetectorConfig, DetectorError

DEFAULT_MODELS = {"detect": "yolo11n.onnx", "pose": "yolo11n-pose.pt"}
BUILTIN_TRACKERS = ("bytetrack", "botsort")
RELIABILITIES = ("reliable", "best_effort")


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str


PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "model",
        "",
        "Model Ultralytics loads (.pt, .onnx, .engine): an asset name or a file path; empty: "
        "yolo11n.onnx for task detect, yolo11n-pose.pt for task pose, from the assets",
    ),
    ParamSpec("task", "detect", f"Model task: {' | '.join(TASKS)}"),
    ParamSpec(
        "backend",
        "onnx",
        f"{' | '.join(BACKENDS)}: Ultralytics predict (any model it loads, TensorRT .engine on Jetson); "
        "ONNX Runtime with numpy pre/post-processing (.onnx, no torch); PyTorch CUDA with a CUDA graph "
        "and the post-processing on the GPU (.pt or .onnx, device cuda:N). docs/perception.md compares them",
    ),
    ParamSpec(
        "cameras",
        [],
        "Camera names, e.g. [head, wrist]: camera NAME reads /NAME/image_raw and /NAME/camera_info and "
        "publishes under /perception/NAME/; all cameras go through the model as one batch. "
        "Empty: one camera, /camera/image_raw → /perception/detections",
    ),
    ParamSpec("confidence", 0.25, "Minimum detection score in [0, 1]"),
    ParamSpec("iou", 0.7, "IoU threshold of non-maximum suppression in (0, 1]"),
    ParamSpec("classes", [], "Class names to keep, e.g. [person, chair]; empty keeps all"),
    ParamSpec("imgsz", 640, "Model input size in pixels (multiple of 32; fixed-size ONNX: its own)"),
    ParamSpec("device", "cpu", "Inference device: cpu or cuda:N"),
    ParamSpec("half", False, "FP16 inference (CUDA only)"),
    ParamSpec("max_det", 300, "Maximum detections per frame"),
    ParamSpec(
        "tracker",
        "bytetrack",
        "bytetrack | botsort (config/trackers/*.yaml) | none | path to a tracker YAML in Ultralytics' format",
    ),
    ParamSpec(
        "max_rate_hz",
        5.0,
        "Most frames processed per second; 0 = as fast as the model runs. "
        "Only the newest frame is ever processed",
    ),
    ParamSpec(
        "compressed_input",
        False,
        "Subscribe to /camera/image_raw/compressed (CompressedImage) instead of /camera/image_raw",
    ),
    ParamSpec(
        "image_reliability",
        "",
        "Reliability of the image subscription: reliable | best_effort; "
        "empty takes config/qos.yaml's. A best_effort subscription accepts every publisher",
    ),
    ParamSpec("debug_image_max_hz", 5.0, "Most debug images per second (built only while subscribed)"),
    ParamSpec("markers_max_hz", 5.0, "Most marker arrays per second (built only while subscribed)"),
    ParamSpec(
        "marker_distance_m",
        2.0,
        "Distance in front of the camera (m) of the plane the /perception/markers boxes are drawn on, "
        "using the intrinsics of /camera/camera_info (before it arrives: focal length = image width)",
    ),
    ParamSpec("warmup_frames", 2, "Blank frames run at activation so the first real frame is not slow"),
    ParamSpec("qos_file", "", "QoS file; empty: config/qos.yaml"),
    ParamSpec("diagnostics_period_s", 1.0, "Period of /diagnostics"),
)


class SettingsError(ValueError):
    """A parameter value is unusable; the message names the parameter."""


@dataclass(frozen=True)
class PerceptionSettings:
    detector: DetectorConfig
    cameras: tuple[CameraTopics, ...]
    max_rate_hz: float
    compressed_input: bool
    image_reliability: str
    debug_image_max_hz: float
    markers_max_hz: float
    marker_distance_m: float
    warmup_frames: int
    qos_file: str
    diagnostics_period_s: float

    @classmethod
    def from_parameters(cls, values: Mapping[str, Any]) -> PerceptionSettings:
        """Validate parameter values (missing ones take their defaults) and resolve file paths."""
        p = {spec.name: spec.default for spec in PARAMETERS} | dict(values)
        task = p["task"]
        if task not in TASKS:
            raise SettingsError(f"task: expected one of {', '.join(TASKS)}, got {task!r}")
        if p["backend"] == "onnx" and task == "pose" and not p["model"]:
            raise SettingsError(
                "task pose with backend onnx needs a pose ONNX model, and none is bundled: export one "
                "(tools/export_model.py yolo11n-pose.pt --format onnx --dynamic) and set model:=<its path>, "
                "or use backend:=ultralytics (or gpu on a CUDA machine) with yolo11n-pose.pt"
            )
        try:
            model = str(model_file(p["model"] or DEFAULT_MODELS[task], "model"))
        except AssetError as error:
            raise SettingsError(str(error)) from None
        if p["max_rate_hz"] < 0:
            raise SettingsError(f"max_rate_hz: expected >= 0 (0 = unlimited), got {p['max_rate_hz']}")
        if p["debug_image_max_hz"] <= 0:
            raise SettingsError(f"debug_image_max_hz: expected > 0, got {p['debug_image_max_hz']}")
        if p["markers_max_hz"] <= 0:
            raise SettingsError(f"markers_max_hz: expected > 0, got {p['markers_max_hz']}")
        if p["marker_distance_m"] <= 0:
            raise SettingsError(f"marker_distance_m: expected > 0 (metres), got {p['marker_distance_m']}")
        if p["image_reliability"] not in ("", *RELIABILITIES):
            raise SettingsError(
                f"image_reliability: expected '' (from the QoS file), {' or '.join(RELIABILITIES)}, "
                f"got {p['image_reliability']!r}"
            )
        if p["warmup_frames"] < 0:
            raise SettingsError(f"warmup_frames: expected >= 0, got {p['warmup_frames']}")
        if p["diagnostics_period_s"] <= 0:
            raise SettingsError(f"diagnostics_period_s: expected > 0, got {p['diagnostics_period_s']}")
        try:
            cameras = tuple(camera_topics(list(p["cameras"] or ()), bool(p["compressed_input"])))
        except CameraNameError as error:
            raise SettingsError(f"cameras: {error}") from None
        detector = DetectorConfig(
            model=model,
            task=task,
            backend=p["backend"],
            confidence=float(p["confidence"]),
            iou=float(p["iou"]),
            classes=tuple(p["classes"] or ()),
            imgsz=int(p["imgsz"]),
            device=p["device"],
            half=bool(p["half"]),
            max_det=int(p["max_det"]),
            tracker=resolve_tracker(p["tracker"]),
        )
        try:
            detector.validate()
        except DetectorError as error:
            raise SettingsError(str(error)) from None
        return cls(
            detector=detector,
            cameras=cameras,
            max_rate_hz=float(p["max_rate_hz"]),
            compressed_input=bool(p["compressed_input"]),
            image_reliability=p["image_reliability"],
            debug_image_max_hz=float(p["debug_image_max_hz"]),
            markers_max_hz=float(p["markers_max_hz"]),
            marker_distance_m=float(p["marker_distance_m"]),
            warmup_frames=int(p["warmup_frames"]),
            qos_file=p["qos_file"],
            diagnostics_period_s=float(p["diagnostics_period_s"]),
        )


def resolve_tracker(value: str) -> str | None:
    """'none' → None; a built-in name → our tuned YAML in config/trackers; otherwise a YAML path."""
    if value in ("none", ""):
        return None
    if value in BUILTIN_TRACKERS:
        return str(config_dir() / "trackers" / f"{value}.yaml")
    if not value.endswith((".yaml", ".yml")) or not Path(value).is_file():
        raise SettingsError(
            f"tracker: expected {', '.join(BUILTIN_TRACKERS)}, none, or an existing .yaml file, got {value!r}"
        )
    return value
