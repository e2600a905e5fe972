"""governor: lowers perception and memory rates under load, restores them when it passes (DESIGN §3).

Inputs: the VLA node's deadline misses from /diagnostics (status "<vla_node>: control", values
`deadline_misses.*`), the machine's CPU and GPU utilisation and temperatures (platform_state).
Outputs: `max_rate_hz` of the perception and memory nodes through their standard
`<node>/set_parameters` services, and a "governor: load" status on /diagnostics (level, rates, the
reasons, the Jetson power mode and thermal state, or which of those sources are absent here), and
"governor: inputs" (reports refused: stamps, sizes, counts no control loop can produce; see
governor.MissCounter). When it stops (deactivate, shutdown) it asks for the profile's rates again.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterDescriptor, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn

from humanoid_bringup.governor import Governor, GovernorConfig, MissCounter, Sample
from humanoid_bringup.platform_state import CpuMeter, PlatformInfo, gpu_percent, temperatures_c
from humanoid_common.diagnostics import OK, WARN, DiagnosticsPublisher
from humanoid_common.lifecycle import ManagedNode, run_node
from humanoid_common.qos import load_qos_config
from humanoid_common.validation import bounded_count, stamp_ns
from humanoid_common.watch import WatchedSubscription, inputs_status

#: A DiagnosticArray with more statuses than this is refused (a node publishes a handful).
MAX_STATUSES = 1000
#: How long a governor being destroyed waits for the nodes to take back their profile's rates.
RESTORE_TIMEOUT_S = 3.0

DEFAULTS = GovernorConfig(perception_rates=(5.0, 2.0, 1.0), memory_rates=(2.0, 1.0, 0.5))
PARAMETERS: dict[str, tuple[Any, str]] = {
    "perception_rates": (list(DEFAULTS.perception_rates), "perception max_rate_hz per level, normal first"),
    "memory_rates": (list(DEFAULTS.memory_rates), "memory max_rate_hz per level, normal first"),
    "cpu_high_percent": (DEFAULTS.cpu_high_percent, "CPU utilisation above this is pressure"),
    "cpu_low_percent": (DEFAULTS.cpu_low_percent, "...below this is calm"),
    "gpu_high_percent": (DEFAULTS.gpu_high_percent, "GPU utilisation above this is pressure"),
    "gpu_low_percent": (DEFAULTS.gpu_low_percent, "...below this is calm"),
    "thermal_high_c": (DEFAULTS.thermal_high_c, "hottest thermal zone above this is pressure"),
    "thermal_low_c": (DEFAULTS.thermal_low_c, "...below this is calm"),
    "step_s": (DEFAULTS.step_s, "at most one level more per this many seconds of pressure"),
    "recover_s": (DEFAULTS.recover_s, "one level back after this many seconds of calm"),
    "period_s": (1.0, "sampling period"),
    "refresh_s": (10.0, "re-send the current rates this often (a respawned node starts at its own)"),
    "perception_node": ("perception_node", "name of the perception node (relative to this namespace)"),
    "memory_node": ("memory_node", "name of the memory node"),
    "vla_node": ("vla_node", "name of the VLA node whose diagnostics count deadline misses"),
}


def _double(value: float) -> ParameterValue:
    return ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=float(value))


def _rate_request(rate: float) -> SetParameters.Request:
    return SetParameters.Request(parameters=[ParameterMsg(name="max_rate_hz", value=_double(rate))])


class GovernorNode(ManagedNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("governor", **kwargs)
        for name, (default, description) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description))
        self.governor: Governor | None = None
        self.misses = MissCounter()
        self.sent: dict[str, float] = {}  # node → rate last acknowledged
        self._rate_clients: dict[str, Any] = {}
        self._timer_handles: list[Any] = []
        self._restoring: dict[str, Any] = {}  # role → request for the profile's rate, sent when stopping
        self._diagnostics_sub: WatchedSubscription | None = None
        self._diagnostics: DiagnosticsPublisher | None = None
        self.platform = PlatformInfo(None, False, 0, False)
        self.cpu = CpuMeter()
        self.last_sample: Sample | None = None
        self.autostart()

    def _param(self, name: str) -> Any:
        return self.get_parameter(name).value

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            config = GovernorConfig(
                perception_rates=tuple(float(v) for v in self._param("perception_rates")),
                memory_rates=tuple(float(v) for v in self._param("memory_rates")),
                **{name: float(self._param(name)) for name in (
                    "cpu_high_percent", "cpu_low_percent", "gpu_high_percent", "gpu_low_percent",
                    "thermal_high_c", "thermal_low_c", "step_s", "recover_s")},
            )  # fmt: skip
            self.governor = Governor(config)
            if not self._param("period_s") > 0 or not self._param("refresh_s") > 0:
                raise ValueError("period_s and refresh_s must be > 0 s")
        except ValueError as error:
            self.get_logger().error(f"cannot configure: {error}")
            return TransitionCallbackReturn.FAILURE
        self.platform = PlatformInfo.probe()
        if self.platform.absent():
            self.get_logger().info(f"not on this machine: {'; '.join(self.platform.absent())}")
        self._rate_clients = {
            role: self.create_client(SetParameters, f"{self._param(role)}/set_parameters")
            for role in ("perception_node", "memory_node")
        }
        self._diagnostics = DiagnosticsPublisher(self, "governor", 1.0)
        self._diagnostics.add("load", self._status)
        self._diagnostics.add("inputs", inputs_status(lambda: [s for s in (self._diagnostics_sub,) if s]))
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.cpu = CpuMeter()
        self._diagnostics_sub = WatchedSubscription(
            self, DiagnosticArray, "/diagnostics", self._on_diagnostics, load_qos_config()
        )
        self._timer_handles = [
            self.create_timer(float(self._param("period_s")), self._sample),
            self.create_timer(float(self._param("refresh_s")), self._send_rates),
        ]
        self._send_rates()
        return super().on_activate(state)

    def stop_input(self) -> None:
        for timer in self._timer_handles:
            self.destroy_timer(timer)
        self._timer_handles = []
        if self._diagnostics_sub is not None:
            self._diagnostics_sub.destroy()
            self._diagnostics_sub = None
        self._restoring = self._restore_rates()

    def _restore_rates(self) -> dict[str, Any]:
        """Ask for the profile's rates when stopping (deactivate, shutdown, Ctrl-C): nobody would bring
        back the load shed. The requests (role → future) when some rate was lowered."""
        if self.governor is None:
            return {}
        self.governor.release()
        rates = self.governor.rates()
        shed = {role: rate for role, rate in rates.items() if self.sent.get(role, rate) != rate}  # answered
        if not shed:
            return {}
        if not self.context.ok():
            self.get_logger().warning(f"the ROS context is shut down: cannot restore the rates {shed}")
            return {}
        self.get_logger().info(f"stopping: restoring the profile's rates {shed}")
        return self._send_rates()

    def destroy_node(self) -> None:
        """Going for good: the process's executor has stopped, so spin here until the nodes have
        answered the restoring requests of stop_input (at most RESTORE_TIMEOUT_S), then destroy. A
        node whose parameter service goes away meanwhile is stopping too (the whole stack is): it
        starts again at its profile's rate, so it is not waited for."""
        self.stop_input()
        if self._restoring:
            executor = SingleThreadedExecutor(context=self.context)
            executor.add_node(self)
            deadline = time.monotonic() + RESTORE_TIMEOUT_S
            while time.monotonic() < deadline and any(
                not future.done() and self._rate_clients[role].service_is_ready()
                for role, future in self._restoring.items()
            ):
                executor.spin_once(timeout_sec=0.05)
            executor.remove_node(self)
            executor.shutdown()
            rates = self.governor.rates()
            for role, future in self._restoring.items():  # its done-callback would need another spin
                if future.done():
                    self._acknowledged(role, rates[role], future)
                elif not self._rate_clients[role].service_is_ready():
                    self.get_logger().info(
                        f"{self._param(role)} is stopping too: it starts at its profile's rate"
                    )
                else:
                    self.get_logger().warning(
                        f"no answer from {self._param(role)}: its rate may stay lowered"
                    )
        super().destroy_node()

    def release(self) -> None:
        for client in self._rate_clients.values():
            self.destroy_client(client)
        self._rate_clients = {}
        if self._diagnostics is not None:
            self._diagnostics.destroy()
            self._diagnostics = None

    # ---------------------------------------------------------------- inputs
    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        """Take the VLA node's deadline counters; a report that fails a check raises
        InvalidMessageError (dropped and counted by the subscription, "governor: inputs")."""
        stamp_ns(msg.header.stamp, self.get_clock().now().nanoseconds)
        wanted = f"{self._param('vla_node')}: control"
        for status in bounded_count(msg.status, "status", MAX_STATUSES):
            if status.name == wanted:
                counters = MissCounter.parse((kv.key, kv.value) for kv in status.values)
                self.misses.update(counters, time.monotonic())

    @property
    def vla_deadline_misses(self) -> int | None:
        return self.misses.total

    def _sample(self) -> None:
        temps = temperatures_c()
        sample = Sample(
            now=self.get_clock().now().nanoseconds / 1e9,
            vla_deadline_misses=self.vla_deadline_misses,
            cpu_percent=self.cpu.percent(),
            gpu_percent=gpu_percent() if self.platform.gpu else None,
            temperature_c=max(temps.values()) if temps else None,
        )
        self.last_sample = sample
        if self.governor.update(sample):
            why = ", ".join(self.governor.reasons) or "calm"
            self.get_logger().info(f"level {self.governor.level} ({why}): rates {self.governor.rates()}")
            self._send_rates()

    # ---------------------------------------------------------------- outputs
    def _send_rates(self) -> dict[str, Any]:
        """Send the current level's rates to the nodes that serve; the requests (role → future)."""
        futures = {}
        for role, rate in self.governor.rates().items():
            client = self._rate_clients.get(role)
            if client is None or not client.service_is_ready():
                continue
            future = client.call_async(_rate_request(rate))
            future.add_done_callback(lambda f, role=role, rate=rate: self._acknowledged(role, rate, f))
            futures[role] = future
        return futures

    def _acknowledged(self, role: str, rate: float, future: Any) -> None:
        result = future.result()
        if result is not None and result.results and result.results[0].successful:
            self.sent[role] = rate
        else:
            reason = result.results[0].reason if result is not None and result.results else "no reply"
            self.get_logger().warning(f"{self._param(role)} refused max_rate_hz {rate:g}: {reason}")

    def _status(self) -> tuple[bytes, str, dict[str, Any]]:
        governor = self.governor
        sample = self.last_sample
        values: dict[str, Any] = {
            "level": governor.level,
            "level_changes": governor.changes,
            **{f"rate_hz.{role}": rate for role, rate in governor.rates().items()},
            **{f"acknowledged_hz.{role}": rate for role, rate in self.sent.items()},
            "vla_deadline_misses": "unknown"
            if self.vla_deadline_misses is None
            else self.vla_deadline_misses,
            "cpu_percent": "absent" if sample is None or sample.cpu_percent is None else sample.cpu_percent,
            "gpu_percent": "absent" if sample is None or sample.gpu_percent is None else sample.gpu_percent,
            "temperature_c": "absent"
            if sample is None or sample.temperature_c is None
            else sample.temperature_c,
            "jetson_power_mode": self.platform.power_mode or "absent",
            "tegrastats": "present" if self.platform.tegrastats else "absent",
        }
        if governor.level == 0:
            return OK, "normal rates", values
        return (
            WARN,
            f"shedding load, level {governor.level}: {', '.join(governor.reasons) or 'recovering'}",
            values,
        )


def main(args: list[str] | None = None) -> int:
    return run_node(GovernorNode, args)


if __name__ == "__main__":
    sys.exit(main())
