"""The Fast DDS profile reaches Fast DDS under the variable name its version reads."""

from __future__ import annotations

import os

import pytest

from humanoid_common.config import PROFILE_VARIABLES, apply_fastdds_profile, config_dir


@pytest.fixture
def clean_env(monkeypatch):
    for variable in PROFILE_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    return monkeypatch


def test_our_profile_is_set_under_both_names(clean_env):
    profile = apply_fastdds_profile()
    assert profile == str(config_dir() / "fastdds.xml")
    assert all(os.environ[v] == profile for v in PROFILE_VARIABLES)


@pytest.mark.parametrize("variable", PROFILE_VARIABLES)
def test_a_users_profile_wins_under_either_name(clean_env, variable):
    clean_env.setenv(variable, "/robot/fastdds.xml")
    assert apply_fastdds_profile() == "/robot/fastdds.xml"
    assert all(os.environ[v] == "/robot/fastdds.xml" for v in PROFILE_VARIABLES)
