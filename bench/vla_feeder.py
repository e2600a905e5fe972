"""Camera and robot stand-in for bench/vla.py, in its own process as the drivers are on a robot.

Publishes /camera/image_raw (rgb8, 30 Hz), /joint_states (100 Hz, all joints at 0) and, once,
the instruction on /vla/instruction (transient local, so nodes started later still get it).
Runs until SIGINT.

    python bench/vla_feeder.py --joints shoulder_joint,elbow_joint [--width 320 --height 240]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "test")]

import rclpy  # noqa: E402
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor  # noqa: E402
from rclpy.utilities import remove_ros_args  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from vla_fixtures import Feeder  # noqa: E402  (the tests' camera/robot publisher)

from humanoid_common.config import apply_fastdds_profile  # noqa: E402
from humanoid_common.qos import load_qos_config  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--joints", required=True, help="comma-separated joint names")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--instruction", default="touch the red cup")
    args = parser.parse_args(remove_ros_args(argv)[1:])
    joints = args.joints.split(",")
    apply_fastdds_profile()
    rclpy.init(args=argv)
    node = rclpy.create_node("vla_bench_feeder")
    Feeder(node, positions=[0.0] * len(joints), image_shape=(args.height, args.width, 3), joint_names=joints)
    qos = load_qos_config()
    instruction = node.create_publisher(String, "/vla/instruction", qos.profile("/vla/instruction"))
    instruction.publish(String(data=args.instruction))
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:  # the executor first, so no callback task outlives the node
        executor.shutdown(timeout_sec=2)
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
