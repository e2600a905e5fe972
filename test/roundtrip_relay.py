#!/usr/bin/env python3
"""A separate process for the interface round-trip test (test_interfaces.py).

Republishes every humanoid_stack message it receives on /roundtrip/in/<Name> to
/roundtrip/out/<Name> unchanged, and serves /roundtrip/<Service>: the expected response (seeded
like the test's) only when the request arrived exactly as the test built it, else an empty one.
"""

from __future__ import annotations

import random
import sys

import rclpy
from messages import ECHO_QOS, MESSAGE_NAMES, SERVICE_NAMES, interface, populated
from rclpy.executors import ExternalShutdownException

from humanoid_common.config import apply_fastdds_profile

SEED = int(sys.argv[1]) if len(sys.argv) > 1 else 0


def main() -> None:
    apply_fastdds_profile()
    rclpy.init()
    node = rclpy.create_node("roundtrip_relay")
    for name in MESSAGE_NAMES:
        msg_class = interface("msg", name)
        out = node.create_publisher(msg_class, f"/roundtrip/out/{name}", ECHO_QOS)
        node.create_subscription(msg_class, f"/roundtrip/in/{name}", out.publish, 10)
    for name in SERVICE_NAMES:
        srv = interface("srv", name)

        def answer(request, response, srv=srv, name=name):
            rng = random.Random(f"{SEED}-{name}")
            if request == populated(srv.Request, rng):
                return populated(srv.Response, rng)
            return response

        node.create_service(srv, f"/roundtrip/{name}", answer)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
