"""Helpers shared by the humanoid_stack nodes: QoS, images, diagnostics, time sync."""
