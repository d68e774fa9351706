"""Headless Chromium (Debian's ``chromium`` at /usr/bin/chromium) driven by the ``playwright``
package; playwright's own browser download is never used. Tests skip, saying why, only where
Chromium or playwright cannot be installed (``make test`` installs both when it can).
"""

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("AICACHE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".run" / "screenshots"


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


def _skip_reason() -> str:
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        return f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium, as root)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -r requirements.txt)"
    return ""


@pytest.fixture(scope="module")
def chromium_context(tmp_path_factory):
    """One Chromium with a fresh user-data directory per module; tests open their own pages and
    the cookies are cleared between tests."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    # playwright's sync API runs an event loop in this thread: let the test's ORM calls through,
    # for these tests only.
    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                str(tmp_path_factory.mktemp("chromium-profile")),
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1280, "height": 900},
            )
            try:
                yield context
            finally:
                context.close()
    finally:
        if before is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@pytest.fixture
def page(chromium_context):
    """A fresh page; console errors and failed requests are collected in ``page.problems``."""
    chromium_context.clear_cookies()
    pg = chromium_context.new_page()
    problems: list[str] = []
    pg.on(
        "console",
        lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None,
    )
    pg.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    pg.on("requestfailed", lambda req: problems.append(f"request failed: {req.url}"))
    pg.problems = problems
    yield pg
    pg.close()


@pytest.fixture
def screenshot():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(pg, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        pg.screenshot(path=str(path), full_page=True)
        return path

    return take


from tests.admin.conftest import history, operator, staff  # noqa: E402, F401  (shared fixtures)


@pytest.fixture
def real_ai_cache(settings, history_on, redis_server):
    """caches["ai"] on a real redis-server (emptied), with history shipped to the database."""
    from django.core.cache import caches

    if redis_server.process is None:
        redis_server.start()
    settings.CACHES = {
        **settings.CACHES,
        "ai": {"BACKEND": "aicache.backend.AIResponseCache", "LOCATION": f"{redis_server.url}/0"},
    }
    cache = caches["ai"]
    cache.redis.flushdb()
    assert cache.start_coherence(wait=5) == "live"
    yield cache
    # HISTORY_ENABLED installed this process's flusher on the exporter: take it off again, so that
    # later tests' monitoring data is not shipped into their databases.
    from aicache.monitoring import flusher
    from aicache.monitoring.exporter import get_exporter

    installed = flusher.get_flusher()
    if installed is not None:
        exporter = get_exporter()
        with exporter._lock:
            if installed in exporter._sinks:
                exporter._sinks.remove(installed)
        flusher._flusher = None
