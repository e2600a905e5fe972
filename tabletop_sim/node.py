"""tabletop_sim node: the simulated reference task on ROS topics (a managed node).

Publishes /camera/image_raw (rgb8) + /camera/camera_info, /joint_states and /sim/status (JSON:
episode, instruction, target, success, distance, elapsed, homing); follows /vla/joint_command; reads
/vla/instruction to know which object the current task names; ~/reset (std_srvs/Trigger) lays out
a new random scene and drives the arm home at its velocity limit, as a real arm's controller would
(`homing` is true, and commands are ignored, until it arrives). All timing follows the node clock
(use_sim_time works).
"""

from __future__ import annotations

import json
import sys

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.lifecycle import State, TransitionCallbackReturn
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Header, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from humanoid_common.diagnostics import OK, WARN, DiagnosticsPublisher
from humanoid_common.images import camera_info, numpy_to_image
from humanoid_common.lifecycle import ManagedNode, run_node
from humanoid_common.qos import load_qos_config
from humanoid_common.validation import InvalidMessageError, bounded_count, bounded_text, shorten, stamp_ns
from humanoid_common.watch import WatchedPublisher, WatchedSubscription, inputs_status
from tabletop_sim.commands import CommandError, TrajectoryPoint, current_target
from tabletop_sim.instructions import parse_target
from tabletop_sim.render import Camera, render
from tabletop_sim.world import JOINT_NAMES, SuccessSpec, World

MAX_PHYSICS_STEP_S = 0.02  # a late timer tick is integrated in steps no longer than this
MAX_COMMAND_POINTS = 1000  # a trajectory longer than this is refused, not walked through
MAX_NAME_CHARS = 64  # of a joint name
MAX_INSTRUCTION_CHARS = 2000  # as vla_node: the sim knows the target of every instruction it acts on

PARAMETERS = {  # name: (default, description)
    "seed": (-1, "layout seed: the same seed gives the same sequence of layouts (-1: random)"),
    "physics_rate_hz": (200.0, "world integration rate"),
    "camera_rate_hz": (30.0, "image and camera_info rate"),
    "joint_state_rate_hz": (100.0, "/joint_states rate"),
    "status_rate_hz": (10.0, "/sim/status rate"),
    "image_width": (320, "camera image width (pixels)"),
    "image_height": (240, "camera image height (pixels)"),
    "camera_frame": ("sim_camera", "frame_id of images and camera_info"),
    "success_radius_m": (0.04, "end effector within this distance of the target counts as touching"),
    "success_hold_s": (0.25, "...for at least this long"),
    "qos_file": ("", "QoS YAML (empty: config/qos.yaml)"),
}


class TabletopSimNode(ManagedNode):
    def __init__(self, **kwargs) -> None:
        super().__init__("tabletop_sim", **kwargs)
        for name, (default, description) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description))
        self._timer_handles: list = []
        self._endpoints: list = []  # watched topics and diagnostics, destroyed by release()
        self._service_handles: list = []
        self._stats = {"commands": 0, "resets": 0}
        self.episode = 0
        self.instruction = ""
        self.autostart()

    def _param(self, name: str):
        return self.get_parameter(name).value

    def _validated_rates(self) -> dict[str, float]:
        rates = {name: float(self._param(name)) for name in PARAMETERS if name.endswith("_rate_hz")}
        for name, rate in rates.items():
            if not 0.1 <= rate <= 2000.0:
                raise ValueError(f"parameter {name} = {rate} must be between 0.1 and 2000 Hz")
        return rates

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            self.rates = self._validated_rates()
            self.camera = Camera(int(self._param("image_width")), int(self._param("image_height")))
            success = SuccessSpec(
                float(self._param("success_radius_m")), float(self._param("success_hold_s"))
            )
            if success.radius_m <= 0 or success.hold_s < 0:
                raise ValueError("success_radius_m must be > 0 and success_hold_s >= 0")
            qos = load_qos_config(self._param("qos_file") or None)
        except (ValueError, OSError) as error:
            self.get_logger().error(f"configuration rejected: {error}")
            return TransitionCallbackReturn.FAILURE
        seed = int(self._param("seed"))
        self.world = World(success_spec=success, seed=None if seed < 0 else seed)
        self.image_pub = WatchedPublisher(self, Image, "/camera/image_raw", qos)
        self.info_pub = WatchedPublisher(self, CameraInfo, "/camera/camera_info", qos)
        self.joint_pub = WatchedPublisher(self, JointState, "/joint_states", qos)
        self.status_pub = WatchedPublisher(self, String, "/sim/status", qos)
        self.command_sub = WatchedSubscription(
            self, JointTrajectory, "/vla/joint_command", self._on_command, qos
        )
        self.instruction_sub = WatchedSubscription(
            self, String, "/vla/instruction", self._on_instruction, qos
        )
        self.reset_srv = self.create_guarded_service(Trigger, "~/reset", self._on_reset)
        self.diagnostics = DiagnosticsPublisher(self, "tabletop_sim")
        self.diagnostics.add("episode", self._diagnostic_status)
        self.diagnostics.add("inputs", inputs_status(lambda: (self.command_sub, self.instruction_sub)))
        self._endpoints = [
            self.image_pub, self.info_pub, self.joint_pub, self.status_pub,
            self.command_sub, self.instruction_sub, self.diagnostics,
        ]  # fmt: skip
        self._service_handles = [self.reset_srv]
        self.get_logger().info(
            f"configured: {self.camera.width}x{self.camera.height} camera, rates {self.rates}"
        )
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self._last_physics_ns = self.get_clock().now().nanoseconds
        for rate, callback in (
            (self.rates["physics_rate_hz"], self._step_physics),
            (self.rates["camera_rate_hz"], self._publish_camera),
            (self.rates["joint_state_rate_hz"], self._publish_joint_states),
            (self.rates["status_rate_hz"], self._publish_status),
        ):
            self._timer_handles.append(self.create_timer(1.0 / rate, callback))
        return TransitionCallbackReturn.SUCCESS

    def stop_input(self) -> None:
        for timer in self._timer_handles:
            self.destroy_timer(timer)
        self._timer_handles.clear()

    def release(self) -> None:
        for endpoint in self._endpoints:
            endpoint.destroy()
        for service in self._service_handles:
            self.destroy_service(service)
        self._endpoints, self._service_handles = [], []

    # --- callbacks: all world logic lives in the core (world, commands, instructions) ---
    # A message the sim cannot use raises InvalidMessageError: its subscription drops it, counts it in
    # the "inputs" status and logs it shortened, at most once per period.

    def _on_command(self, msg: JointTrajectory) -> None:
        if not self._timer_handles:
            return  # inactive: commands are ignored
        now_ns = self.get_clock().now().nanoseconds
        stamp = stamp_ns(msg.header.stamp, now_ns)
        for name in bounded_count(msg.joint_names, "joint_names", len(JOINT_NAMES)):
            bounded_text(name, "joint name", MAX_NAME_CHARS)
        points = [
            TrajectoryPoint(
                bounded_count(p.positions, f"points[{i}].positions", len(JOINT_NAMES)),
                stamp_ns(p.time_from_start, what=f"points[{i}].time_from_start"),
            )
            for i, p in enumerate(bounded_count(msg.points, "points", MAX_COMMAND_POINTS))
        ]
        try:
            self.world.set_command(current_target(msg.joint_names, points, stamp, now_ns, JOINT_NAMES))
        except (CommandError, ValueError) as error:
            raise InvalidMessageError(str(error)) from None
        self._stats["commands"] += 1

    def _on_instruction(self, msg: String) -> None:
        text = bounded_text(msg.data, "instruction", MAX_INSTRUCTION_CHARS)
        if not text.strip():  # an empty instruction ends the task
            self.world.set_target(None)
            self.instruction = ""
            return
        try:
            target = parse_target(text)
            self.world.set_target(target)
        except (ValueError, KeyError) as error:
            raise InvalidMessageError(str(error)) from None
        self.instruction = text
        self.get_logger().info(f"episode {self.episode}: task {shorten(repr(text), 80)} → target {target}")

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self.world.home()
        self.episode += 1
        self.instruction = ""
        self._stats["resets"] += 1
        layout = ", ".join(
            f"{o.name} at ({o.position[0]:.2f}, {o.position[1]:.2f})" for o in self.world.objects
        )
        response.success = True
        response.message = f"episode {self.episode}: {layout}"
        return response

    def _step_physics(self) -> None:
        now = self.get_clock().now().nanoseconds
        remaining = (now - self._last_physics_ns) / 1e9
        self._last_physics_ns = now
        while remaining > 1e-9:
            step = min(remaining, MAX_PHYSICS_STEP_S)
            self.world.step(step)
            remaining -= step

    def _header(self, frame_id: str) -> Header:
        return Header(stamp=self.get_clock().now().to_msg(), frame_id=frame_id)

    def _publish_camera(self) -> None:
        header = self._header(self._param("camera_frame"))
        self.image_pub.publish(numpy_to_image(render(self.world, self.camera), "rgb8", header))
        self.info_pub.publish(
            camera_info(header, self.camera.width, self.camera.height, self.camera.intrinsics())
        )

    def _publish_joint_states(self) -> None:
        msg = JointState(header=self._header(""), name=list(JOINT_NAMES))
        msg.position = self.world.q.tolist()
        msg.velocity = self.world.qd.tolist()
        self.joint_pub.publish(msg)

    def status(self) -> dict:
        world = self.world
        distance = world.target_distance()
        return {
            "episode": self.episode,
            "instruction": self.instruction,
            "target": world.target,
            "success": world.success,
            "distance_m": None if distance is None else round(distance, 4),
            "elapsed_s": round(world.elapsed_s(), 3),
            "homing": world.homing,
            "time_to_success_s": None if world.success_time_s is None else round(world.success_time_s, 3),
            "joints": [round(v, 4) for v in world.q],
            "objects": {o.name: [round(o.position[0], 4), round(o.position[1], 4)] for o in world.objects},
        }

    def _publish_status(self) -> None:
        self.status_pub.publish(String(data=json.dumps(self.status())))

    def _diagnostic_status(self):
        commands, instructions = self.command_sub.health, self.instruction_sub.health
        rejected = {"rejected_commands": commands.dropped, "rejected_instructions": instructions.dropped}
        message = f"episode {self.episode}, target {self.world.target}, success {self.world.success}"
        last = max((commands, instructions), key=lambda health: health.last_problem_at or 0.0)
        if last.last_problem:
            message += f"; last rejected on {last.topic}: {last.last_problem}"
        values = {**self._stats, **rejected, "command_deadline_misses": commands.deadline_misses}
        return WARN if any(rejected.values()) else OK, message, values


def main(args: list[str] | None = None) -> int:
    return run_node(TabletopSimNode, args)


if __name__ == "__main__":
    sys.exit(main())
