"""A missing optional dependency is reported with the extra that installs it (pyproject.toml)."""

import sys

import pytest
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured

from aicache.checks import check_aicache_settings


def test_zstd_without_zstandard_names_the_extra(settings, monkeypatch):
    settings.AICACHE = {"COMPRESSION_ALGORITHM": "zstd", "COMPRESSION_LEVEL": 3}
    assert check_aicache_settings() == []
    monkeypatch.setitem(sys.modules, "zstandard", None)  # what `import zstandard` sees when absent
    messages = check_aicache_settings()
    assert [m.id for m in messages] == ["aicache.E003"]
    assert "zstandard" in messages[0].msg
    assert 'pip install "aicache[zstd]"' in messages[0].hint


def test_zlib_needs_no_extra(settings, monkeypatch):
    monkeypatch.setitem(sys.modules, "zstandard", None)
    settings.AICACHE = {"COMPRESSION_ALGORITHM": "zlib"}
    assert check_aicache_settings() == []


@pytest.mark.parametrize(
    "module", ["prometheus_client", "celery", "kombu", "rest_framework", "drf_spectacular"]
)
def test_monitoring_app_without_its_extra_is_improperly_configured(monkeypatch, module):
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ImproperlyConfigured) as excinfo:
        apps.get_app_config("aicache_monitoring").ready()
    message = str(excinfo.value)
    assert module in message and 'pip install "aicache[monitoring]"' in message
    assert "aicache.monitoring" in message


def test_monitoring_app_ready_with_its_extra(monkeypatch):
    apps.get_app_config("aicache_monitoring").ready()  # installed here: no error, sinks added once
