"""The labelled face set (memory_node.face_sets): the repaired ORL photos, the identity split, conditions."""

from __future__ import annotations

import numpy as np
import pytest

from memory_node.face_sets import CONDITIONS, by_identity, degrade, orl_faces, read_orl_pgm, seed_of

HEADER = b"P5\n92 112\n255\n"


def test_a_pgm_damaged_by_cr_before_lf_is_restored_exactly():
    pixels = np.arange(92 * 112, dtype=np.uint32).astype(np.uint8)  # holds many 0x0A bytes
    original = HEADER + pixels.tobytes()
    damaged = original.replace(b"\n", b"\r\n")
    assert np.array_equal(read_orl_pgm(damaged), pixels.reshape(112, 92))
    assert np.array_equal(read_orl_pgm(original), pixels.reshape(112, 92))
    assert read_orl_pgm(damaged[:-5]) is None  # truncated: refused, not guessed
    assert read_orl_pgm(b"P5\n92 112\n65535\n" + pixels.tobytes()) is None


def test_the_set_has_40_people_split_by_identity():
    calibration, unreadable = orl_faces("calibration")
    held_out, _ = orl_faces("held_out")
    assert sorted(unreadable + orl_faces("held_out")[1]) == ["s8/10.pgm", "s9/8.pgm"]
    people = by_identity(calibration), by_identity(held_out)
    assert [len(p) for p in people] == [30, 10]
    assert not set(people[0]) & set(people[1])
    assert len(calibration) + len(held_out) == 398
    assert all(len(photos) >= 9 for split in people for photos in split.values())
    assert calibration[0].image.shape == (112, 92, 3)
    with pytest.raises(ValueError, match="split"):
        orl_faces("test")


def test_conditions_are_deterministic_and_keep_a_picture():
    photo = orl_faces("calibration")[0][0]
    for condition in CONDITIONS:
        seed = seed_of(photo.source, condition)
        first, again = degrade(photo.image, condition, seed), degrade(photo.image, condition, seed)
        assert np.array_equal(first, again), condition
        assert (first.dtype, first.ndim) == (np.uint8, 3)
    assert degrade(photo.image, "small", 1).shape == (480, 640, 3)
    assert degrade(photo.image, "dim", 1).mean() < 0.5 * photo.image.mean()
    with pytest.raises(ValueError, match="unknown condition"):
        degrade(photo.image, "fog", 1)
