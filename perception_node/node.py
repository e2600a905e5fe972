"""perception_node: the ROS shell around the YOLO detector (DESIGN §2–§3).

Wiring: /camera/image_raw (or .../compressed) → newest-frame slot → worker thread (rate-limited
detect + track) → /perception/detections, /perception/debug_image and /perception/markers (each only
while subscribed; markers placed with /camera/camera_info), /diagnostics.
Managed node: the model is loaded on configure, warmed up on activate, released on cleanup.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import ParameterUninitializedException
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from humanoid_common.diagnostics import ERROR, OK, WARN, DiagnosticsPublisher, LatencyWindow, RateMeter
from humanoid_common.images import (
    ImageFormatError,
    check_compressed,
    compressed_to_numpy,
    image_to_numpy,
    numpy_to_image,
    to_bgr8,
)
from humanoid_common.latest import LatestWorker, RateLimiter, Stamped, rate_error
from humanoid_common.lifecycle import ManagedNode, run_node
from humanoid_common.qos import QosConfig, QosConfigError, load_qos_config
from humanoid_common.throttle import KeyedThrottle, problem_kind
from humanoid_common.validation import header_stamp_ns, shorten
from humanoid_common.watch import TopicHealth, WatchedPublisher, WatchedSubscription, inputs_status
from humanoid_stack.msg import DetectionArray
from perception_node.convert import result_to_msg
from perception_node.debug_draw import draw_detections
from perception_node.detector import Detector, DetectorError, FrameResult
from perception_node.inputs import check_camera_info
from perception_node.markers import camera_intrinsics, detection_markers
from perception_node.settings import PARAMETERS, PerceptionSettings, SettingsError

IMAGE_TOPIC = "/camera/image_raw"
COMPRESSED_TOPIC = "/camera/image_raw/compressed"
DETECTIONS_TOPIC = "/perception/detections"
DEBUG_TOPIC = "/perception/debug_image"
MARKERS_TOPIC = "/perception/markers"
CAMERA_INFO_TOPIC = "/camera/camera_info"
WARN_PERIOD_S = 5.0  # per kind of problem


@dataclass(frozen=True)
class Frame:
    """A received camera frame: decoded BGR pixels (raw input) or the still compressed message."""

    header: Header
    received_ns: int
    bgr: np.ndarray | None = None
    compressed: CompressedImage | None = None


def with_reliability(qos: QosConfig, topic: str, reliability: str) -> QosConfig:
    """A copy of ``qos`` with one topic's reliability replaced (the image_reliability parameter)."""
    if not reliability:
        return qos
    topics = {name: qos[name] for name in qos.topics} | {"": qos[""]}
    topics[topic] = replace(qos[topic], reliability=reliability)
    return QosConfig(topics, f"{qos.source} (reliability of {topic}: {reliability})")


class PerceptionNode(ManagedNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("perception_node", **kwargs)
        for spec in PARAMETERS:
            when = " (changes apply at once)" if spec.name == "max_rate_hz" else " (read on configure)"
            descriptor = ParameterDescriptor(description=spec.description + when)
            default = Parameter.Type.STRING_ARRAY if spec.default == [] else spec.default
            self.declare_parameter(spec.name, default, descriptor)
        self.settings: PerceptionSettings | None = None
        self._detector: Detector | None = None
        self._worker: LatestWorker[Frame] | None = None
        self._image_sub: WatchedSubscription | None = None
        self._camera_info_sub: WatchedSubscription | None = None
        self._camera_info: CameraInfo | None = None
        self._detections_pub: WatchedPublisher | None = None
        self._debug_pub: WatchedPublisher | None = None
        self._markers_pub: WatchedPublisher | None = None
        self._diagnostics: DiagnosticsPublisher | None = None
        self._throttle = KeyedThrottle(WARN_PERIOD_S)
        self._reset_stats()
        self.live_parameter("max_rate_hz", rate_error, self._set_rate)
        self.autostart()

    @property
    def model_loaded(self) -> bool:
        return self._detector is not None

    def _set_rate(self, max_rate_hz: float) -> None:
        if self.settings is not None:
            self.settings = replace(self.settings, max_rate_hz=max_rate_hz)
        if self._worker is not None and self._worker.max_rate_hz != max_rate_hz:
            self._worker.set_rate(max_rate_hz)
            self.get_logger().info(f"max_rate_hz set to {max_rate_hz:g}")

    # ---------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.settings = PerceptionSettings.from_parameters(self._parameter_values())
            qos = load_qos_config(self.settings.qos_file or None)
            self._qos = with_reliability(qos, self._image_topic(), self.settings.image_reliability)
            self.get_logger().info(f"loading {self.settings.detector.model} ({self.settings.detector.task})")
            self._detector = Detector(self.settings.detector)
        except (SettingsError, DetectorError, QosConfigError) as error:
            self.get_logger().error(f"cannot configure: {error}")
            return TransitionCallbackReturn.FAILURE
        self._detections_pub = WatchedPublisher(self, DetectionArray, DETECTIONS_TOPIC, self._qos)
        self._debug_pub = WatchedPublisher(self, Image, DEBUG_TOPIC, self._qos)
        self._markers_pub = WatchedPublisher(self, MarkerArray, MARKERS_TOPIC, self._qos)
        self._diagnostics = DiagnosticsPublisher(self, "perception_node", self.settings.diagnostics_period_s)
        self._diagnostics.add("camera", self._camera_status)
        self._diagnostics.add("inference", self._inference_status)
        self._diagnostics.add("inputs", inputs_status(self._watched_inputs))
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        settings = self.settings
        frames = settings.warmup_frames
        self._detector.warm_up(frames, lambda i, n: self.get_logger().info(f"warm-up {i}/{n}"))
        self._reset_stats()
        self._debug_limiter = RateLimiter(settings.debug_image_max_hz)
        self._markers_limiter = RateLimiter(settings.markers_max_hz)
        self._worker = LatestWorker(self._process, settings.max_rate_hz, self._on_worker_error, "perception")
        msg_type = CompressedImage if settings.compressed_input else Image
        self._image_sub = WatchedSubscription(
            self, msg_type, self._image_topic(), self._on_image, self._qos,
            on_deadline_missed=self._on_camera_deadline,
        )  # fmt: skip
        self._camera_info_sub = WatchedSubscription(
            self, CameraInfo, CAMERA_INFO_TOPIC, self._on_camera_info, self._qos
        )
        self._worker.start()
        limit = settings.max_rate_hz
        rate = f"at most {limit:g} Hz" if limit > 0 else "as fast as the model runs"
        self.get_logger().info(
            f"active: {self._image_sub.subscription.topic_name} → {DETECTIONS_TOPIC} {rate} "
            f"({self._detector.model_name}, tracker {settings.detector.tracker or 'none'})"
        )
        return super().on_activate(state)

    def stop_input(self) -> None:
        for sub in (self._image_sub, self._camera_info_sub):
            if sub is not None:
                sub.destroy()
        self._image_sub = self._camera_info_sub = None
        if self._worker is not None:
            if not self._worker.stop():
                self.get_logger().error("the inference thread did not stop within 10 s")
            self._worker = None
        if self._detector is not None:
            self._detector.reset_tracks()

    def release(self) -> None:
        for endpoint in (self._diagnostics, self._detections_pub, self._debug_pub, self._markers_pub):
            if endpoint is not None:
                endpoint.destroy()
        self._diagnostics = self._detections_pub = self._debug_pub = self._markers_pub = None
        if self._detector is not None:
            self._detector.close()
            self._detector = None

    def _watched_inputs(self) -> list[WatchedSubscription]:
        return [sub for sub in (self._image_sub, self._camera_info_sub) if sub is not None]

    # ---------------------------------------------------------------- data path
    # A callback raises InvalidMessageError (ImageFormatError) for a message it cannot use: the
    # subscription drops it, counts it in the "inputs" status and logs it shortened, throttled.
    def _on_image(self, msg: Image | CompressedImage) -> None:
        received_ns = self.get_clock().now().nanoseconds
        header_stamp_ns(msg.header, received_ns)
        if isinstance(msg, CompressedImage):  # decoding is costly: only the frames processed are decoded
            check_compressed(msg)  # its declared size, before anything is decoded
            self._worker.submit(Frame(msg.header, received_ns, compressed=msg))
            return
        bgr = to_bgr8(image_to_numpy(msg), msg.encoding)  # checks size, step, length, encoding
        self._worker.submit(Frame(msg.header, received_ns, bgr=bgr))

    def _on_camera_info(self, msg: CameraInfo) -> None:
        header_stamp_ns(msg.header, self.get_clock().now().nanoseconds)
        check_camera_info(msg)
        self._camera_info = msg  # read by the worker thread: one reference, replaced whole

    def _process(self, stamped: Stamped[Frame]) -> None:
        frame = stamped.item
        start_ns = self.get_clock().now().nanoseconds
        self.stats_age_ms.add((start_ns - self._reference_ns(frame)) / 1e6)
        bgr = frame.bgr
        if bgr is None:
            try:
                bgr = compressed_to_numpy(frame.compressed, "bgr8")
            except ImageFormatError as error:  # passed check_compressed, but the data is corrupt
                self._undecodable(error)
                return
        result = self._detector.detect(bgr)
        msg = result_to_msg(result, frame.header, self._detector.model_name)
        msg.latency_ms = (self.get_clock().now().nanoseconds - self._reference_ns(frame)) / 1e6
        self._detections_pub.publish(msg)
        self.stats_rate.tick()
        self.stats_inference_ms.add(result.inference_ms)
        self.stats_latency_ms.add(msg.latency_ms)
        self._publish_views(bgr, result, frame.header)

    def _publish_views(self, bgr: np.ndarray, result: FrameResult, header: Header) -> None:
        """The debug image and the markers, each only while subscribed and at most at its rate."""
        if self._debug_pub.publisher.get_subscription_count() > 0 and self._debug_limiter.ready():
            self._debug_limiter.mark()
            canvas = draw_detections(bgr, result.detections, self.stats_rate.rate())
            self._debug_pub.publish(numpy_to_image(canvas, "bgr8", header))
        if self._markers_pub.publisher.get_subscription_count() > 0 and self._markers_limiter.ready():
            self._markers_limiter.mark()
            intrinsics = camera_intrinsics(self._camera_info, bgr.shape[1], bgr.shape[0])
            distance_m = self.settings.marker_distance_m
            self._markers_pub.publish(detection_markers(result.detections, header, intrinsics, distance_m))

    @staticmethod
    def _reference_ns(frame: Frame) -> int:
        """Latency reference: the image stamp, or the receipt time when the camera left it zero."""
        stamp_ns = frame.header.stamp.sec * 1_000_000_000 + frame.header.stamp.nanosec
        return stamp_ns or frame.received_ns

    def _undecodable(self, error: ImageFormatError) -> None:
        self.undecodable += 1
        self.last_undecodable = shorten(error)
        self._undecodable_at = time.monotonic()
        self._warn(f"dropped an undecodable image on {self._image_topic()}: {self.last_undecodable}")

    def _on_worker_error(self, error: BaseException) -> None:
        self.errors += 1
        self.last_error = f"{type(error).__name__}: {error}"
        self._warn(f"processing a frame failed, frame dropped: {self.last_error}")

    def _on_camera_deadline(self, health: TopicHealth) -> None:
        self._warn(
            f"no image on {self._image_topic()} for more than {health.deadline_ms:g} ms "
            f"({health.deadline_misses} deadline misses so far)",
            key="camera deadline",
        )

    def _warn(self, message: str, key: str | None = None) -> None:
        if (text := self._throttle.message(key or problem_kind(message), message)) is not None:
            self.get_logger().warning(text)

    # ---------------------------------------------------------------- diagnostics
    def _reset_stats(self) -> None:
        self.undecodable = self.errors = 0
        self.last_undecodable = self.last_error = ""
        self._undecodable_at: float | None = None
        self.stats_rate = RateMeter(5.0)
        self.stats_inference_ms = LatencyWindow(100)
        self.stats_latency_ms = LatencyWindow(100)
        self.stats_age_ms = LatencyWindow(100)

    def _camera_status(self) -> tuple[bytes, str, dict[str, Any]]:
        sub = self._image_sub
        if sub is None:
            return OK, "inactive", {}
        health = sub.health
        age = sub.age_s()
        values = {
            "topic": sub.subscription.topic_name,
            "reliability": sub.qos.reliability,
            "messages": health.messages,
            "deadline_ms": health.deadline_ms,
            "deadline_misses": health.deadline_misses,
            "age_s": age if age is not None else "never",
            "incompatible_qos": health.incompatible_qos,
        }
        if health.incompatible_qos and not health.messages:
            return ERROR, "a publisher's QoS is incompatible: no images arrive", values
        if age is None:
            return WARN, "waiting for the first image", values
        if health.deadline_ms and age * 1e3 > health.deadline_ms:
            return WARN, f"camera stalled: no image for {age:.1f} s", values
        return OK, "receiving images", values

    def _inference_status(self) -> tuple[bytes, str, dict[str, Any]]:
        worker = self._worker
        image = self._image_sub.health if self._image_sub else None
        malformed = self.undecodable + (image.dropped if image else 0)
        values = {
            "model": self._detector.model_name if self._detector else "",
            "rate_hz": self.stats_rate.rate(),
            "processed": worker.processed if worker else 0,
            "skipped_stale": worker.slot.skipped if worker else 0,
            "malformed_dropped": malformed,
            "undecodable": self.undecodable,
            "last_malformed": self.last_undecodable or (image.last_problem if image else ""),
            "errors": self.errors,
            "last_error": self.last_error,
            **self.stats_inference_ms.summary("inference_ms."),
            **self.stats_latency_ms.summary("latency_ms."),
            **self.stats_age_ms.summary("frame_age_at_start_ms."),
        }
        if self.errors:
            return ERROR, f"{self.errors} frames failed: {self.last_error}", values
        times = (image.last_problem_at if image else None, self._undecodable_at)
        problems = [t for t in times if t is not None]
        if problems and time.monotonic() - max(problems) < WARN_PERIOD_S:
            return WARN, f"dropping malformed images ({malformed} so far)", values
        return OK, "running" if worker else "inactive", values

    # ---------------------------------------------------------------- parameters
    def _parameter_values(self) -> dict[str, Any]:
        values = {}
        for spec in PARAMETERS:
            try:
                values[spec.name] = self.get_parameter(spec.name).value
            except ParameterUninitializedException:
                values[spec.name] = spec.default
        return values

    def _image_topic(self) -> str:
        compressed = self.settings.compressed_input if self.settings else False
        return COMPRESSED_TOPIC if compressed else IMAGE_TOPIC


def main(args: list[str] | None = None) -> int:
    return run_node(PerceptionNode, args)


if __name__ == "__main__":
    sys.exit(main())
