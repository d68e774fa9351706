"""`make run` as a user meets it: every command its banner prints works as printed (from a shell
that has none of the run's environment), and every way of stopping it stops everything it started
and leaves make without an error."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from aicache.bench.redis_server import free_port
from tests.install.run_helpers import ROOT, MakeRun, alive, children_of, parse_banner, run_in_pty

pytestmark = [pytest.mark.install, pytest.mark.timeout(600)]


def shell(command: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def make_run(tmp_path):
    runs = []

    def start(**kwargs) -> MakeRun:
        run = MakeRun(tmp_path / "run", free_port(), free_port(), **kwargs)
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.kill()


def assert_all_stopped(run: MakeRun, started: set[int], output: str) -> None:
    deadline = time.monotonic() + 10
    while (left := {p for p in started if alive(p)}) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"still running after the stop: {left}"
    assert "Stopped everything make run started." in output
    assert not re.search(r"make(\[\d+\])?: \*\*\*", output), output[-2000:]  # "make: *** [...] Error 130"
    assert not run.pidfile.exists()


def test_banner_commands_work_as_printed(make_run, tmp_path):
    run = make_run()
    entries = parse_banner(run.banner())
    started = children_of(run.proc.pid)
    env = run.env  # a user's shell: no SECRET_KEY, ports, RUN_DIR or DJANGO_SETTINGS_MODULE
    assert {"home", "health", "metrics", "admin", "dashboard", "superuser", "manage.py", "stop"} <= set(
        entries
    )

    health = shell(entries["health"], env)
    assert health.returncode == 0 and json.loads(health.stdout)["status"] == "ok", health

    metrics = shell(entries["metrics"], env)
    assert metrics.returncode == 0 and "redis_cache_hits_total{" in metrics.stdout, metrics.stdout[:300]

    with urllib.request.urlopen(entries["home"], timeout=10) as response:
        home = response.read().decode()
    for href in re.findall(r'href="([^"]+)"', home):
        url = urllib.parse.urljoin(entries["home"], href)
        try:
            status = urllib.request.urlopen(url, timeout=10).status
        except urllib.error.HTTPError as exc:
            status = exc.code
        assert status != 404 and status < 500, (href, status)

    manage = shell(entries["manage.py"], env)
    assert manage.returncode == 0 and "no issues" in manage.stdout, manage

    password = secrets.token_urlsafe(16)
    code, transcript = run_in_pty(
        entries["superuser"],
        [
            ("Username", "admin"),
            ("Email address", "admin@example.com"),
            ("Password:", password),
            ("Password (again)", password),
        ],
        env,
    )
    assert code == 0 and "Superuser created successfully." in transcript, transcript

    # ... and that user logs in to the admin the banner points at.
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    login_url = urllib.parse.urljoin(entries["admin"], "login/?next=/admin/")
    page = opener.open(login_url, timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode(
        {"csrfmiddlewaretoken": token, "username": "admin", "password": password, "next": "/admin/"}
    ).encode()
    admin = (
        opener.open(urllib.request.Request(login_url, data=form, headers={"Referer": login_url}), timeout=10)
        .read()
        .decode()
    )
    assert "Site administration" in admin
    dashboard = opener.open(entries["dashboard"].split()[0], timeout=10)
    assert dashboard.status == 200 and dashboard.url.endswith("/admin/aicache/dashboard/")

    stop = shell(entries["stop"], env)
    assert stop.returncode == 0 and "stopped" in stop.stdout, stop
    code, output = run.finish()
    assert code == 0
    assert_all_stopped(run, started, output)
    assert not listening(int(re.search(r":(\d+)/", entries["home"]).group(1)))
    again = shell(entries["stop"], env)  # nothing left to stop: says so, still exit 0
    assert again.returncode == 0 and "not running" in again.stdout


@pytest.mark.parametrize(
    "how,expected_code",
    [
        # Ctrl-C: the terminal signals the whole foreground process group. run.sh stops everything
        # and exits 0; GNU make, which got the SIGINT too, then ends itself with it (no error line).
        ("ctrl-c", -signal.SIGINT),
        # SIGTERM to make: make passes it on to run.sh, waits for it, then ends itself with it.
        ("sigterm-to-make", -signal.SIGTERM),
        # `make run &` from a script starts with SIGINT ignored: make ignores it, run.sh (which
        # resets it) stops everything and make exits 0.
        ("sigint-to-background-job", 0),
    ],
)
def test_signals_stop_everything_without_make_error(make_run, how, expected_code):
    run = make_run(ignore_sigint=how == "sigint-to-background-job")
    run.banner()
    started = children_of(run.proc.pid)
    assert len(started) >= 4  # run.sh, redis-server, Celery worker and beat, runserver
    if how == "sigterm-to-make":
        run.proc.send_signal(signal.SIGTERM)
    else:
        os.killpg(run.proc.pid, signal.SIGINT)
    code, output = run.finish()
    assert code == expected_code, output[-2000:]
    assert_all_stopped(run, started, output)
