"""Hostile service requests: one generator per service type the nodes offer.

Field contents come from the message generators (malformed images, hostile and 1 MB strings); the
shapes are those a careless or hostile caller on the ROS graph can send: look-alike names, NUL,
path traversal, hundreds of image paths, extreme track ids, request storms (a Trigger has no fields:
its hostility is the rate at which the runner calls it).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np
from std_srvs.srv import SetBool, Trigger

from fuzz.malformed import HOSTILE_TEXTS, IMAGE, megabyte_text
from humanoid_common.images import numpy_to_image
from humanoid_stack.srv import ConfirmIdentity, Enroll, Forget, ListPeople

EXTREME_IDS = (-(2**63), -2, -1, 0, 2**63 - 1)
PATHS = ("/etc/shadow", "../../../../etc/passwd", "/dev/zero", "/proc/self/mem", "", "/nonexistent.jpg")


def _text(rng: random.Random) -> str:
    return megabyte_text(rng) if rng.random() < 0.2 else rng.choice((*HOSTILE_TEXTS, "Аlice", "Ali\0ce"))


def _image(rng: random.Random) -> Any:
    valid = numpy_to_image(np.zeros((48, 64, 3), np.uint8), "bgr8")
    return rng.choice(IMAGE)(valid, rng)[1]


def _enroll(rng: random.Random) -> Enroll.Request:
    request = Enroll.Request(name=_text(rng), consent=rng.random() < 0.5, track_id=rng.choice(EXTREME_IDS))
    if rng.random() < 0.5:
        request.images = [_image(rng) for _ in range(rng.randint(1, 4))]
    else:
        request.image_paths = [rng.choice(PATHS) for _ in range(rng.choice((1, 3, 200)))]
    return request


def _forget(rng: random.Random) -> Forget.Request:
    return Forget.Request(person_id=_text(rng), display_name=_text(rng), learned_only=rng.random() < 0.5)


def _list_people(rng: random.Random) -> ListPeople.Request:
    return ListPeople.Request(include_provisional=rng.random() < 0.5, include_archived=rng.random() < 0.5)


def _confirm(rng: random.Random) -> ConfirmIdentity.Request:
    return ConfirmIdentity.Request(track_id=rng.choice(EXTREME_IDS), person_id=_text(rng), confirmed=True)


BY_TYPE: dict[type, Callable[[random.Random], Any]] = {
    Trigger: lambda rng: Trigger.Request(),
    SetBool: lambda rng: SetBool.Request(data=rng.random() < 0.5),
    Enroll: _enroll,
    Forget: _forget,
    ListPeople: _list_people,
    ConfirmIdentity: _confirm,
}


def hostile_request(srv_type: type, rng: random.Random) -> Any:
    return BY_TYPE[srv_type](rng)
