"""humanoid_common.allocator: applied on glibc, left alone where the user tuned malloc."""

from __future__ import annotations

import platform

import pytest

from humanoid_common.allocator import USER_SETTINGS, keep_large_buffers


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt thresholds are glibc's")
def test_applies_on_glibc(monkeypatch):
    for variable in (*USER_SETTINGS, "GLIBC_TUNABLES"):
        monkeypatch.delenv(variable, raising=False)
    assert keep_large_buffers()


@pytest.mark.parametrize(
    ("variable", "value"),
    [("MALLOC_MMAP_THRESHOLD_", "131072"), ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=0")],
)
def test_user_malloc_settings_win(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    assert not keep_large_buffers()


def test_other_tunables_do_not_count_as_malloc_settings(monkeypatch):
    for variable in USER_SETTINGS:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.rtld.optional_static_tls=2048")
    assert keep_large_buffers() == (platform.libc_ver()[0] == "glibc")
