"""vla_node: the ROS shell around the policy, the action queue and the safety layer.

Wiring: camera images and joint states → observation → inference thread → action queue → safety →
/vla/joint_command at the control rate (and the same positions as JointState on
/vla/commanded_joint_states, for rviz2). The control step runs on its own thread (`ControlLoop`,
absolute deadlines on the wall clock), not on the executor, so message callbacks cannot delay it;
it never waits on inference and everything it calls is bounded (queue pop, limit checks, two
publishes). Subscriptions, the enable service and diagnostics stay on the executor.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from builtin_interfaces.msg import Duration as DurationMsg
from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.time import Time
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Empty, String
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from humanoid_common.config import config_dir
from humanoid_common.diagnostics import ERROR, OK, WARN, DiagnosticsPublisher, LatencyWindow, RateMeter
from humanoid_common.images import image_to_numpy
from humanoid_common.lifecycle import ManagedNode, run_node
from humanoid_common.qos import load_qos_config
from humanoid_common.throttle import KeyedThrottle
from humanoid_common.validation import bounded_text, header_stamp_ns, shorten
from humanoid_common.watch import WatchedPublisher, WatchedSubscription, inputs_status
from humanoid_stack.msg import ActionChunk
from vla_node.action_queue import ActionQueue, QueueConfig, resample_chunk
from vla_node.backends import load_policy, parse_spec
from vla_node.control_loop import ControlLoop
from vla_node.inference import InferenceWorker, Result
from vla_node.observation import VlaConfig, joint_positions, rgb_image
from vla_node.policy import Observation
from vla_node.safety import HOLDS, Inputs, SafetyConfig, SafetyLayer, load_limits_urdf, load_limits_yaml

PARAMETERS = {  # name: (default, description)
    "policy": ("", "policy to load: reference:<dir>, onnx:<file|dir> or lerobot:<dir>"),
    "device": ("cpu", "cpu, cuda[:N], or tensorrt[:N] (ONNX only)"),
    "config_file": ("", "observation mapping and backend options (default: config/vla.yaml)"),
    "limits_file": ("", "joint limits, YAML or URDF (default: config/vla_limits.yaml)"),
    "qos_file": ("", "QoS file (default: config/qos.yaml)"),
    "control_rate_hz": (24.0, "control loop rate, 1 to 100 Hz"),
    "mode": ("async", "async: infer while executing; sync: infer only when the queue is empty (comparison)"),
    "chunk_threshold": (0.5, "request a new chunk when queued steps <= this fraction of a chunk"),
    "merge": ("weighted", "overlapping steps: weighted (average) or replace (newest wins)"),
    "new_chunk_weight": (0.5, "weight of the newer chunk in a weighted merge, (0, 1]"),
    "inference_delay_ms": (0.0, "delay added to every inference (emulates a slower model)"),
    "max_camera_age_ms": (200.0, "hold when the newest image is older than this"),
    "max_joint_state_age_ms": (100.0, "hold when the newest joint state is older than this"),
    "tracking_tolerance": (0.3, "rad or m the measured position may trail the last command; farther: fault"),
    "rest_tolerance": (0.01, "rad or m a resting joint may vary or lie beyond a limit; runs start at rest"),
    "inference_threads": (0, "CPU threads of the model runtime (0: runtime default)"),
}
#: GIL switch interval set by `main` (Python's default is 5 ms): a thread holding the GIL (message
#: conversion, the inference thread's Python code) delays the control thread by at most about this.
#: Process-wide, so only the node's own entry point sets it, never an import.
SWITCH_INTERVAL_S = 0.0005
#: Longest instruction taken (a sentence or a short paragraph); longer ones are refused.
MAX_INSTRUCTION_CHARS = 2000
#: On deactivate or shutdown, the control loop runs on this long at most while the arm brakes to rest.
BRAKE_TIMEOUT_S = 1.0
RANGES = {"control_rate_hz": (1.0, 100.0), "chunk_threshold": (0.0, 1.0), "new_chunk_weight": (0.0, 1.0)}


class VlaNode(ManagedNode):
    def __init__(self, **kwargs) -> None:
        super().__init__("vla_node", **kwargs)
        for name, (default, description) in PARAMETERS.items():
            descriptor = ParameterDescriptor(description=description)
            if name in RANGES:
                low, high = RANGES[name]
                descriptor.floating_point_range = [FloatingPointRange(from_value=low, to_value=high)]
            self.declare_parameter(name, default, descriptor)
        self.policy = None
        self.worker: InferenceWorker | None = None
        self.control_loop: ControlLoop | None = None
        self._endpoints: list = []
        self.camera_to_command_ms = LatencyWindow(500)
        self.rate = RateMeter(5.0)
        self._condition_log = KeyedThrottle(5.0)
        self._instruction_log = KeyedThrottle(1.0)
        self._reported_fault: str | None = None
        self.autostart()

    # -- lifecycle ------------------------------------------------------------------------------

    def _param(self, name: str):
        return self.get_parameter(name).value

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure()
        except (ValueError, RuntimeError, OSError) as error:
            self.get_logger().error(f"configuration failed: {error}")
            self.release()
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def _configure(self) -> None:
        spec = self._param("policy")
        if not spec:
            raise ValueError("parameter 'policy' is empty: set e.g. policy:=onnx:vla_node/models/reference")
        backend, _ = parse_spec(spec)
        config = VlaConfig.load(self._param("config_file") or config_dir() / "vla.yaml")
        limits_file = Path(self._param("limits_file") or config_dir() / "vla_limits.yaml")
        limits = (
            load_limits_urdf(limits_file) if limits_file.suffix == ".urdf" else load_limits_yaml(limits_file)
        )
        rate = float(self._param("control_rate_hz"))
        self.period_s = 1.0 / rate
        queue_config = QueueConfig(
            mode=self._param("mode"),
            threshold=float(self._param("chunk_threshold")),
            merge=self._param("merge"),
            new_chunk_weight=float(self._param("new_chunk_weight")),
        )
        options = dict(config.backend_options.get(backend, {}))
        if self._param("inference_threads") and backend in ("onnx", "reference"):
            options["threads"] = int(self._param("inference_threads"))
        self.get_logger().info(f"loading policy {spec} on {self._param('device')} ...")
        started = time.monotonic()
        self.policy = load_policy(spec, device=self._param("device"), **options)
        meta = self.policy.metadata
        missing = set(meta.image_keys) - set(config.images)
        if missing:
            raise ValueError(
                f"the policy needs images {sorted(missing)}: map them to topics in the config file"
            )
        self.get_logger().info(
            f"policy {meta.name} loaded in {time.monotonic() - started:.1f} s: {meta.action_dim} joints "
            f"{list(meta.joint_names)}, chunk {meta.chunk_length} x {meta.control_period_s * 1e3:.1f} ms"
        )
        self.safety = SafetyLayer(
            meta.joint_names,
            limits,
            SafetyConfig(
                self.period_s,
                max_camera_age_s=self._param("max_camera_age_ms") / 1e3,
                max_joint_state_age_s=self._param("max_joint_state_age_ms") / 1e3,
                tracking_tolerance=float(self._param("tracking_tolerance")),
                rest_tolerance=float(self._param("rest_tolerance")),
            ),
        )
        steps = resample_chunk(np.zeros((meta.chunk_length, 1)), meta.control_period_s, self.period_s).shape[
            0
        ]
        self.queue = ActionQueue(steps, queue_config)
        self._images: dict[str, tuple[np.ndarray, int]] = {}  # key → (RGB pixels, stamp ns)
        self._joints: np.ndarray | None = None
        self._instruction = ""
        self._submitted_instruction = ""
        self._deadline_missed = {"camera": False, "joints": False}
        self._tick = 0  # the next control tick; ticks keep counting across re-activations
        self._first_tick = 0  # the tick of the running loop's deadline 0
        self._latency_stamp_ns: int | None = None
        self._make_endpoints(config)

    def _make_endpoints(self, config: VlaConfig) -> None:
        qos = load_qos_config(self._param("qos_file") or None)
        self._image_subs = {
            key: WatchedSubscription(
                self,
                Image,
                topic,
                lambda msg, key=key: self._on_image(key, msg),
                qos,
                on_deadline_missed=lambda _h: self._missed("camera"),
            )
            for key, topic in config.images.items()
            if key in self.policy.metadata.image_keys
        }
        self._joint_sub = WatchedSubscription(
            self,
            JointState,
            config.joint_states,
            self._on_joint_state,
            qos,
            on_deadline_missed=lambda _h: self._missed("joints"),
        )
        subs = [
            WatchedSubscription(self, String, "/vla/instruction", self._on_instruction, qos),
            WatchedSubscription(self, Empty, "/vla/stop", self._on_stop, qos),
        ]
        self._subscriptions_in = [*self._image_subs.values(), self._joint_sub, *subs]
        self.command_pub = WatchedPublisher(self, JointTrajectory, "/vla/joint_command", qos)
        self.commanded_pub = WatchedPublisher(self, JointState, "/vla/commanded_joint_states", qos)
        self.chunk_pub = WatchedPublisher(self, ActionChunk, "/vla/action_chunk", qos)
        self._enable_srv = self.create_guarded_service(SetBool, "/vla/enable", self._on_enable)
        self.diagnostics = DiagnosticsPublisher(self, "vla_node", 1.0)
        self.diagnostics.add("control", self._control_status)
        self.diagnostics.add("inputs", inputs_status(lambda: self._subscriptions_in))
        self._endpoints = [
            *self._subscriptions_in,
            self.command_pub,
            self.commanded_pub,
            self.chunk_pub,
        ]

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.worker = InferenceWorker(self.policy, delay_s=self._param("inference_delay_ms") / 1e3)
        self._first_tick = self._tick
        self.control_loop = ControlLoop(
            self.period_s, self._control_tick, name="vla-control", on_failure=self._on_control_failure
        )
        self.control_loop.start()
        self.get_logger().info(
            f"active at {1 / self.period_s:g} Hz, {self.queue.config.mode.value} mode; motion output is "
            "disabled until /vla/enable is called with true"
        )
        return super().on_activate(state)

    def stop_input(self) -> None:
        """Brake to rest (the loop keeps publishing until the arm is at rest), then stop the loop."""
        if getattr(self, "safety", None):
            self.safety.enable(False)
            loop = self.control_loop
            deadline = time.monotonic() + BRAKE_TIMEOUT_S
            while loop is not None and loop.running and self.safety.running and time.monotonic() < deadline:
                time.sleep(self.period_s / 4)
            if self.safety.running and loop is not None and loop.running:
                self.get_logger().error(
                    f"the arm was still braking after {BRAKE_TIMEOUT_S:g} s; stopping anyway"
                )
        if self.control_loop is not None:
            self.control_loop.stop()
        if self.worker is not None:
            self.worker.close()
            self.worker = None

    def release(self) -> None:
        """Stop the loop and free the policy, its worker and the topics (idempotent)."""
        self.stop_input()
        for endpoint in self._endpoints:
            endpoint.destroy()
        self._endpoints = []
        if getattr(self, "diagnostics", None):
            self.diagnostics.remove("control")
        if self.policy is not None and hasattr(self.policy, "close"):
            self.policy.close()
        self.policy = None

    # -- inputs ---------------------------------------------------------------------------------

    # Each callback raises InvalidMessageError for a message it cannot use: the subscription drops it,
    # counts it on /diagnostics ("inputs") and logs it, shortened, once per period.

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_image(self, key: str, msg: Image) -> None:
        stamp = header_stamp_ns(msg.header, self._now_ns())
        self._images[key] = (rgb_image(image_to_numpy(msg), msg.encoding), stamp)
        self._deadline_missed["camera"] = False

    def _on_joint_state(self, msg: JointState) -> None:
        header_stamp_ns(msg.header, self._now_ns())
        self._joints = joint_positions(msg.name, msg.position, self.policy.metadata.joint_names)
        self._deadline_missed["joints"] = False

    def _missed(self, which: str) -> None:
        self._deadline_missed[which] = True

    def _on_instruction(self, msg: String) -> None:
        self._instruction = bounded_text(msg.data, "the instruction", MAX_INSTRUCTION_CHARS)
        message = self._instruction_log.message("instruction", f"instruction: {shorten(repr(msg.data))}")
        if message is not None:
            self.get_logger().info(message)

    def _on_stop(self, _msg: Empty) -> None:
        self.get_logger().warning("stop received: holding until /vla/enable is called with true")
        self.safety.stop()

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        response.success, response.message = self.safety.enable(request.data)
        if response.success:  # one severity per logging line: rclpy refuses a change
            self.get_logger().info(response.message)
        else:
            self.get_logger().error(response.message)
        return response

    # -- control loop ---------------------------------------------------------------------------

    def _on_control_failure(self, error: BaseException) -> None:
        self.get_logger().fatal(
            f"the control step failed, no more commands are published: {type(error).__name__}: {error}"
        )

    def _control_tick(self, deadline: int) -> None:
        """One control period, on the control thread; `deadline` counts periods since activation
        (skipped ones included, so queued actions stay on their time slots after an overrun)."""
        self.rate.tick()
        tick = self._first_tick + deadline
        self._tick = tick + 1
        if self._instruction != self._submitted_instruction or self.safety.stopped:
            self.queue.reset()
        result = self.worker.poll()
        if result is not None:
            self._take_result(result, tick)
        camera_ages = [sub.age_s() for sub in self._image_subs.values()]
        camera_age_s = None if None in camera_ages else max(camera_ages)
        decision = self.safety.step(
            Inputs(
                action=self.queue.pop(tick),
                measured=self._joints,
                camera_age_s=camera_age_s,
                joint_state_age_s=self._joint_sub.age_s(),
                camera_deadline_missed=self._deadline_missed["camera"],
                joint_state_deadline_missed=self._deadline_missed["joints"],
                time_s=time.monotonic(),
            )
        )
        self._report_faults()
        if decision.command is not None:
            self._publish_command(decision.command, decision.velocity)
            if decision.intervention is None and self._latency_stamp_ns is not None:
                now_ns = self.get_clock().now().nanoseconds
                self.camera_to_command_ms.add((now_ns - self._latency_stamp_ns) / 1e6)
                self._latency_stamp_ns = None
        if self.safety.stopped or not self.safety.camera_fresh(camera_age_s):
            return  # never infer from stale images
        if self.queue.wants_observation(tick + 1):
            self._submit(tick)

    def _report_faults(self) -> None:
        """Log a latched fault once when it appears (and when it clears), a fault condition at most
        once per period while it lasts."""
        fault, condition = self.safety.fault, self.safety.condition
        if fault != self._reported_fault:
            if fault is not None:
                self.get_logger().error(f"fault, motion stopped until /vla/enable is accepted: {fault}")
            else:
                self.get_logger().info("fault cleared")
            self._reported_fault = fault
        elif condition is not None and fault is None:
            text = f"measured joint state refused (enabling is refused meanwhile): {condition}"
            if (message := self._condition_log.message("condition", text)) is not None:
                self.get_logger().error(message)

    def _take_result(self, result: Result, tick: int) -> None:
        observation = result.request.observation
        if result.chunk is None:
            self.get_logger().error(f"inference failed: {result.error}", throttle_duration_sec=5.0)
            return
        self._publish_chunk(result)
        if observation.instruction != self._instruction:
            return  # produced for an instruction that has been replaced
        meta = self.policy.metadata
        chunk = resample_chunk(result.chunk, meta.control_period_s, self.period_s)
        self.queue.add_chunk(chunk, result.request.tick, tick)
        self._latency_stamp_ns = observation.stamp_ns

    def _submit(self, tick: int) -> None:
        if not self._instruction or self._joints is None or self.worker.busy:
            return
        if len(self._images) < len(self._image_subs):
            return
        images = {key: pixels for key, (pixels, _) in self._images.items()}
        stamp_ns = max(stamp for _, stamp in self._images.values())
        observation = Observation(images, self._joints.copy(), self._instruction, stamp_ns)
        reset = self._instruction != self._submitted_instruction
        if self.worker.submit(observation, tick, reset=reset):
            self._submitted_instruction = self._instruction

    def _publish_command(self, positions: np.ndarray, velocity: np.ndarray) -> None:
        """The command for the controller, then the same positions, with the velocity of the step to
        them, as a JointState stamped now (rviz2's "commanded" robot model, and the record a checker of
        the safety invariant reads)."""
        names, values = list(self.policy.metadata.joint_names), positions.tolist()
        msg = JointTrajectory()
        msg.joint_names = names
        point = JointTrajectoryPoint()
        point.positions = values
        nanos = round(self.period_s * 1e9)
        point.time_from_start = DurationMsg(sec=nanos // 1_000_000_000, nanosec=nanos % 1_000_000_000)
        msg.points = [point]  # header stamp zero: start now
        self.command_pub.publish(msg)
        commanded = JointState(name=names, position=values, velocity=velocity.tolist())
        commanded.header.stamp = self.get_clock().now().to_msg()
        self.commanded_pub.publish(commanded)

    def _publish_chunk(self, result: Result) -> None:
        meta = self.policy.metadata
        msg = ActionChunk()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.observation_stamp = Time(nanoseconds=result.request.observation.stamp_ns).to_msg()
        msg.joint_names = list(meta.joint_names)
        msg.dt = meta.control_period_s
        msg.horizon = result.chunk.shape[0]
        msg.positions = result.chunk.astype(float).ravel().tolist()
        msg.policy = meta.name
        msg.instruction = result.request.observation.instruction
        msg.inference_ms = result.latency_s * 1e3
        self.chunk_pub.publish(msg)

    # -- diagnostics ----------------------------------------------------------------------------

    def _control_status(self):
        counts = self.safety.counts
        holds = {f"holds.{kind.value}": counts[kind.value] for kind in HOLDS}
        values = {
            "enabled": self.safety.enabled,
            "stopped": self.safety.stopped,
            "rate_hz": self.rate.rate(),
            **(self._loop_values() if self.control_loop else {}),
            **(self.worker.latency_ms.summary("inference_ms.") if self.worker else {}),
            "inference_errors": self.worker.errors if self.worker else 0,
            "queue_depth": len(self.queue),
            "chunks": self.queue.stats.chunks,
            "dropped_late_steps": self.queue.stats.dropped_late,
            **holds,
            **{f"clamped.{k}": counts[k] for k in ("position_limit", "velocity_limit", "acceleration_limit")},
            "deadline_misses.camera": sum(s.health.deadline_misses for s in self._image_subs.values()),
            "deadline_misses.joint_states": self._joint_sub.health.deadline_misses,
            "running": self.safety.running,
            "starts": counts["start"],
            "waiting_for_rest": counts["waiting_for_rest"],
            "fault": self.safety.fault or "",
            "measured_state_problem": self.safety.condition or "",
            **self.camera_to_command_ms.summary("camera_to_command_ms."),
        }
        stale = counts["stale_camera"] + counts["stale_joint_states"]
        level = WARN if self.safety.stopped or (self.worker and self.worker.errors) else OK
        state = "enabled" if self.safety.enabled else "disabled (dry run)"
        message = f"motion {state}; {stale} stale holds, {counts['invalid_action']} invalid actions"
        failure = self.control_loop.failure if self.control_loop else None
        if failure is not None:
            level, message = ERROR, f"control step failed, no commands: {type(failure).__name__}: {failure}"
        elif self.safety.condition:
            level, message = (
                ERROR,
                f"measured joint state refused, no motion, enabling refused: {self.safety.condition}",
            )
        elif self.safety.fault:
            level, message = (
                ERROR,
                f"fault, motion stopped until /vla/enable is accepted: {self.safety.fault}",
            )
        return level, message, values

    def _loop_values(self) -> dict:
        loop = self.control_loop
        return {
            **loop.jitter_ms.summary("period_jitter_ms."),
            "overruns": loop.overruns,
            "late_steps": loop.late_steps,
            "deadline_misses.control": loop.deadline_misses,
        }


def main(args: list[str] | None = None) -> int:
    sys.setswitchinterval(SWITCH_INTERVAL_S)  # process-wide: hand the GIL to the control thread quickly
    return run_node(VlaNode, args)


if __name__ == "__main__":
    sys.exit(main())
