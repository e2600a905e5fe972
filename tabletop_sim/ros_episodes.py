"""Episodes of the reference task driven over ROS: the sim's reset service, vla_node's enable
service, /vla/instruction and /sim/status (used by tools/vla/evaluate.py and the demo).

The driver works on a node the caller owns. With `spin_once` it spins that node's executor itself
while it waits (a script's main thread); without, another thread is already spinning it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from humanoid_common.qos import load_qos_config
from tabletop_sim.episode import EpisodeResult

#: The sim drives the arm home at its velocity limit after a reset (a few seconds at most).
HOMING_TIMEOUT_S = 15.0


class RosEpisodeDriver:
    """Drives episodes through the sim's and vla_node's ROS interfaces."""

    def __init__(
        self,
        node: Any,
        reset_service: str = "/tabletop_sim/reset",
        enable_service: str = "/vla/enable",
        *,
        spin_once: Callable[..., None] | None = None,
    ) -> None:
        qos = load_qos_config()
        self.node = node
        self._spin_once = spin_once
        self.status: dict[str, Any] = {}
        node.create_subscription(
            String, "/sim/status", self._on_status, qos.profile("/sim/status", for_subscription=True)
        )
        self.instructions = node.create_publisher(String, "/vla/instruction", qos.profile("/vla/instruction"))
        self.reset_client = node.create_client(Trigger, reset_service)
        self.enable_client = node.create_client(SetBool, enable_service)

    def _on_status(self, msg: String) -> None:
        try:
            self.status = json.loads(msg.data)
        except json.JSONDecodeError:
            self.node.get_logger().warning(
                "unparsable /sim/status message dropped", throttle_duration_sec=5.0
            )

    def spin_until(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._spin_once is not None:
                self._spin_once(timeout_sec=0.02)
            else:
                time.sleep(0.02)
            result = predicate()
            if result:
                return result
        raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")

    def call(self, client: Any, request: Any, what: str, timeout: float = 10.0) -> Any:
        self.spin_until(client.service_is_ready, timeout, f"the service {client.srv_name}")
        future = client.call_async(request)
        self.spin_until(future.done, timeout, what)
        return future.result()

    def wait_ready(self, timeout: float) -> None:
        self.spin_until(
            self.reset_client.service_is_ready, timeout, f"the sim's {self.reset_client.srv_name}"
        )
        self.spin_until(
            self.enable_client.service_is_ready, timeout, f"vla_node's {self.enable_client.srv_name}"
        )
        self.spin_until(lambda: self.status, timeout, "/sim/status")

    def enable(self, on: bool) -> None:
        reply = self.call(self.enable_client, SetBool.Request(data=on), f"enable={on}")
        if not reply.success:
            raise RuntimeError(f"vla_node refused enable={on}: {reply.message}")

    def reset_scene(self) -> int:
        """Disable motion, end the current task, lay out a new scene and wait for the arm to be home;
        the new episode's number."""
        self.enable(False)
        self.instructions.publish(String(data=""))  # ends the previous task in both nodes
        reply = self.call(self.reset_client, Trigger.Request(), "the sim reset")
        episode = int(reply.message.split(":")[0].split()[-1])
        self.spin_until(
            lambda: self.status.get("episode") == episode and not self.status.get("homing"),
            HOMING_TIMEOUT_S,
            f"the arm back home for episode {episode}",
        )
        return episode

    def episode(self, instruction: str, target: str, timeout: float) -> EpisodeResult:
        """reset_scene, give the instruction, enable motion, wait for success or `timeout` sim seconds."""
        episode = self.reset_scene()
        self.instructions.publish(String(data=instruction))
        self.spin_until(
            lambda: self.status.get("episode") == episode and self.status.get("instruction") == instruction,
            5.0,
            "the sim taking the instruction",
        )
        self.enable(True)
        self.spin_until(
            lambda: self.status.get("success") or self.status.get("elapsed_s", 0) >= timeout,
            timeout * 3 + 10,  # wall-clock bound: the sim may run slower than real time on a busy machine
            "success or the episode timeout",
        )
        s = self.status
        return EpisodeResult(
            instruction, target, bool(s["success"]), s["time_to_success_s"], s["distance_m"], 0
        )
