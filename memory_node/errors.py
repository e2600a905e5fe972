"""The one error of a refused memory request (plain Python, no rclpy)."""

from __future__ import annotations


class MemoryRequestError(ValueError):
    """A request the memory cannot or will not fulfil (unknown person, no consent, a refused name, too
    many requests...); the message says why and, where it can, what to do instead."""
