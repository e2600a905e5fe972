"""planner_node: System 2 beside the VLA — an on-device language model turns what people say into
short plans of tool calls, grounded in what the robot knows now and checked before each step."""
