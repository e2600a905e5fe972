"""people_scene: publishes the scripted head-camera scene (tabletop_sim/people.py) as a camera.

/camera/image_raw (bgr8) and /camera/camera_info (an ideal pinhole, `hfov_deg`) at `rate_hz`, stamped
with the node clock. The script's time starts at activation (`autoplay`), or else on `~/start`
(std_srvs/Trigger, which also starts it over); until then the street shows without people. After
`duration_s` the street goes on without people, or the script starts over with `loop`. A managed
node with `autostart`, like the suite's nodes. /diagnostics: `people_scene: scene` (frames, script
time) and `people_scene: inputs` (it subscribes to nothing; there for every node's monitoring alike).
"""

from __future__ import annotations

import sys
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from humanoid_common.config import config_dir
from humanoid_common.diagnostics import OK, DiagnosticsPublisher
from humanoid_common.images import camera_info, numpy_to_image, pinhole_matrix
from humanoid_common.lifecycle import ManagedNode, run_node
from humanoid_common.qos import QosConfigError, load_qos_config
from humanoid_common.watch import WatchedPublisher, inputs_status
from tabletop_sim.people import PeopleScene, SceneError, load_script

PARAMETERS: dict[str, tuple[Any, str]] = {
    "script": ("", "scene script YAML (empty: config/demo/scene.yaml)"),
    "rate_hz": (15.0, "frames per second"),
    "frame_id": ("head_camera", "frame_id of images and camera_info"),
    "hfov_deg": (60.0, "horizontal field of view of the camera_info"),
    "loop": (False, "start the script over after duration_s"),
    "autoplay": (True, "start the script at activation (false: on ~/start)"),
    "qos_file": ("", "QoS YAML (empty: config/qos.yaml)"),
}


class PeopleSceneNode(ManagedNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("people_scene", **kwargs)
        for name, (default, description) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description))
        self.scene: PeopleScene | None = None
        self._endpoints: list[Any] = []
        self._timer = None
        self._start_srv = None
        self._start_ns: int | None = None
        self.frames = 0
        self.autostart()

    def _param(self, name: str) -> Any:
        return self.get_parameter(name).value

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            if not 0.1 <= float(self._param("rate_hz")) <= 120.0:
                raise ValueError(f"rate_hz must be within 0.1..120, got {self._param('rate_hz')}")
            self.scene = PeopleScene(
                load_script(self._param("script") or config_dir() / "demo" / "scene.yaml")
            )
            qos = load_qos_config(self._param("qos_file") or None)
        except (SceneError, QosConfigError, ValueError, OSError) as error:
            self.get_logger().error(f"cannot configure: {error}")
            return TransitionCallbackReturn.FAILURE
        script = self.scene.script
        self._k = pinhole_matrix(script.width, script.height, float(self._param("hfov_deg")))
        self.image_pub = WatchedPublisher(self, Image, "/camera/image_raw", qos)
        self.info_pub = WatchedPublisher(self, CameraInfo, "/camera/camera_info", qos)
        self.diagnostics = DiagnosticsPublisher(self, "people_scene")
        self.diagnostics.add("scene", self._scene_status)
        self.diagnostics.add("inputs", inputs_status(lambda: ()))  # no subscriptions
        self._endpoints = [self.image_pub, self.info_pub, self.diagnostics]
        self._start_srv = self.create_guarded_service(Trigger, "~/start", self._on_start)
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._start_ns = self.get_clock().now().nanoseconds if self._param("autoplay") else None
        self._timer = self.create_timer(1.0 / float(self._param("rate_hz")), self._publish)
        return super().on_activate(state)

    def stop_input(self) -> None:
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None

    def release(self) -> None:
        for endpoint in self._endpoints:
            endpoint.destroy()
        self._endpoints = []
        if self._start_srv is not None:
            self.destroy_service(self._start_srv)
            self._start_srv = None
        self.scene = None

    def scene_time_s(self) -> float | None:
        """Seconds into the script, None before it started."""
        if self._start_ns is None:
            return None
        t = (self.get_clock().now().nanoseconds - self._start_ns) / 1e9
        duration = self.scene.script.duration_s
        return t % duration if self._param("loop") and duration > 0 else t

    def _publish(self) -> None:
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self._param("frame_id"))
        t = self.scene_time_s()
        frame = self.scene.frame(t) if t is not None else self.scene.background(self._waited_s())
        self.image_pub.publish(numpy_to_image(frame, "bgr8", header))
        self.info_pub.publish(camera_info(header, frame.shape[1], frame.shape[0], self._k))
        self.frames += 1

    def _waited_s(self) -> float:
        return self.frames / float(self._param("rate_hz"))

    def _scene_status(self) -> tuple[bytes, str, dict[str, Any]]:
        t = self.scene_time_s()
        values = {"frames": self.frames, "scene_time_s": "not started" if t is None else t}
        return OK, "waiting for ~/start" if t is None else "playing", values

    def _on_start(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self._start_ns = self.get_clock().now().nanoseconds
        response.success, response.message = True, f"scene started ({self.scene.script.duration_s:g} s)"
        return response


def main(args: list[str] | None = None) -> int:
    return run_node(PeopleSceneNode, args)


if __name__ == "__main__":
    sys.exit(main())
