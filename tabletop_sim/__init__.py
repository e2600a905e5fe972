"""tabletop_sim: the simulated reference task for the VLA node (arm, camera, objects, expert)."""
