"""README's "Install in your project", executed as a new user would: build the wheel and sdist,
install the wheel into a fresh virtualenv (dependencies from PyPI), `django-admin startproject`,
paste README's blocks verbatim, migrate, start a real Celery worker on a real redis-server, run
the script and read its stats back from the database. Also: the wheel holds `aicache` only, every
module of the installed wheel imports, and the core installs and works without any extra."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import venv
import zipfile
from pathlib import Path

import pytest

import aicache
from aicache.bench.redis_server import RedisServer

pytestmark = [pytest.mark.install, pytest.mark.timeout(900)]
ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
SECTION = README.split("## Install in your project", 1)[1].split("\n## ", 1)[0]


def readme_blocks() -> list[tuple[str, str, str]]:
    """(path, "append" | "create", code) for each block marked ``<!-- install: PATH MODE -->``."""
    return re.findall(r"<!-- install: (\S+) (append|create) -->\n```\w*\n(.*?)```", SECTION, re.S)


def readme_command(start: str) -> str:
    """The one line of README's install section that starts with ``start``, verbatim."""
    lines = [line for line in SECTION.splitlines() if line.startswith(start)]
    assert len(lines) == 1, f"README's install section should have one line starting {start!r}: {lines}"
    return lines[0]


SETUP = "import django, os\nos.environ['DJANGO_SETTINGS_MODULE'] = 'mysite.settings'\ndjango.setup()\n"
CORE_SETTINGS = """
import os
INSTALLED_APPS += ["aicache"]
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "ai": {"BACKEND": "aicache.backend.AIResponseCache", "LOCATION": os.environ["REDIS_URL"]},
}
"""


def run(args, cwd: Path, env: dict[str, str], timeout: float = 300, shell: bool = False):
    result = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, shell=shell
    )
    assert result.returncode == 0, f"{args}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def clean_env(venv_dir: Path, **extra: str) -> dict[str, str]:
    """A user's shell with the virtualenv activated: none of this repository's settings or paths."""
    drop = ("DJANGO_SETTINGS_MODULE", "SECRET_KEY", "PYTHONPATH", "VIRTUAL_ENV", "REDIS_URL", "DATABASE_URL")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith(("AICACHE_", "CELERY_"))}
    env["PATH"] = f"{venv_dir / 'bin'}{os.pathsep}{env['PATH']}"
    env["VIRTUAL_ENV"] = str(venv_dir)
    return {**env, **extra}


def pip_install(venv_dir: Path, *requirements: str) -> None:
    run(
        [str(venv_dir / "bin" / "pip"), "install", "--disable-pip-version-check", "-q", *requirements],
        cwd=venv_dir,
        env=clean_env(venv_dir),
        timeout=600,
    )


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict[str, Path]:
    """Wheel and sdist built by `python -m build` from a copy of the sources, checked by twine."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "aicache", src / "aicache", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("dist")
    run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(src)],
        cwd=src,
        env=dict(os.environ),
        timeout=600,
    )
    wheel, sdist = next(out.glob("*.whl")), next(out.glob("*.tar.gz"))
    run(
        [sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)],
        cwd=out,
        env=dict(os.environ),
    )
    return {"wheel": wheel, "sdist": sdist}


@pytest.fixture(scope="module")
def core_venv(dist, tmp_path_factory) -> Path:
    """A fresh virtualenv holding the wheel without extras."""
    venv_dir = tmp_path_factory.mktemp("venv")
    venv.create(venv_dir, with_pip=True)
    pip_install(venv_dir, str(dist["wheel"]))
    return venv_dir


@pytest.fixture(scope="module")
def all_venv(core_venv, dist) -> Path:
    """The same virtualenv after `pip install "aicache[all]"` (of the built wheel)."""
    pip_install(core_venv, f"aicache[all] @ {dist['wheel'].as_uri()}")
    return core_venv


def test_wheel_and_sdist_ship_the_app_only(dist):
    wheel = zipfile.ZipFile(dist["wheel"])
    names = wheel.namelist()
    assert {n.split("/")[0] for n in names} == {"aicache", f"aicache-{aicache.__version__}.dist-info"}
    shipped = {n for n in names if n.startswith("aicache/")}
    in_repo = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "aicache").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    assert in_repo <= shipped, f"missing from the wheel: {sorted(in_repo - shipped)}"
    metadata = wheel.read(f"aicache-{aicache.__version__}.dist-info/METADATA").decode()
    assert f"Version: {aicache.__version__}" in metadata
    for extra in ("zstd", "hiredis", "monitoring", "all"):
        assert f"Provides-Extra: {extra}" in metadata
    assert re.search(r"Requires-Dist: celery\[redis\].*extra == \"monitoring\"", metadata)
    assert re.search(r"Requires-Dist: prometheus-client.*extra == \"monitoring\"", metadata)
    members = tarfile.open(dist["sdist"]).getnames()
    assert not [m for m in members if "aicache_project" in m or "/tests/" in m]


def startproject(venv_dir: Path, where: Path, env: dict[str, str]) -> Path:
    where.mkdir()
    run(readme_command("django-admin startproject"), cwd=where, env=env, shell=True)
    return where / "mysite"


def test_core_alone_works_and_names_the_missing_extras(core_venv, tmp_path, redis_server):
    env = clean_env(core_venv, REDIS_URL=f"{redis_server.url}/3")
    python = str(core_venv / "bin" / "python")
    probe = run(
        [python, "-c", "import importlib.util as u; print(u.find_spec('prometheus_client'))"],
        cwd=tmp_path,
        env=env,
    )
    assert probe.stdout.strip() == "None", "the core install pulled in the monitoring extra"
    project = startproject(core_venv, tmp_path / "core", env)
    settings = project / "mysite" / "settings.py"
    settings.write_text(settings.read_text() + CORE_SETTINGS)
    run([python, "manage.py", "check"], cwd=project, env=env)
    script = (
        SETUP + "from django.core.cache import caches\n"
        "c = caches['ai']\n"
        "c.cache_response('core alone ' * 5, 'summarize', None, {'summary': 'ok'})\n"
        "print(c.get_cached_response('core alone ' * 5, 'summarize')['summary'])\n"
    )
    assert run([python, "-c", script], cwd=project, env=env).stdout.strip() == "ok"

    # zstd (the default algorithm, trained dictionaries) comes with the core install.
    settings.write_text(settings.read_text() + "AICACHE = {'COMPRESSION_ALGORITHM': 'zstd'}\n")
    run([python, "manage.py", "check"], cwd=project, env=env)
    assert run([python, "-c", script], cwd=project, env=env).stdout.strip() == "ok"

    settings.write_text(settings.read_text() + "AICACHE = {}\nINSTALLED_APPS += ['aicache.monitoring']\n")
    failed = subprocess.run(
        [python, "manage.py", "check"], cwd=project, env=env, capture_output=True, text=True
    )
    assert failed.returncode != 0 and "ImproperlyConfigured" in failed.stderr
    assert 'pip install "aicache[monitoring]"' in failed.stderr
    assert "ModuleNotFoundError" not in failed.stderr.splitlines()[-1]


@pytest.fixture(scope="module")
def monitoring_venv(dist, tmp_path_factory) -> Path:
    """Another fresh virtualenv, with `aicache[monitoring]` only (no hiredis)."""
    venv_dir = tmp_path_factory.mktemp("venv-monitoring")
    venv.create(venv_dir, with_pip=True)
    pip_install(venv_dir, f"aicache[monitoring] @ {dist['wheel'].as_uri()}")
    return venv_dir


def test_readme_install_steps_record_stats_in_the_database(all_venv, tmp_path):
    follow_readme(all_venv, tmp_path)


def test_the_monitoring_extra_alone_records_stats_too(monitoring_venv, tmp_path):
    """README's steps with `aicache[monitoring]` alone (no hiredis): the same, zstd included (a
    core dependency)."""
    follow_readme(monitoring_venv, tmp_path)


def follow_readme(venv_dir: Path, tmp_path: Path) -> None:
    broker = RedisServer(tmp_path / "redis")  # one Redis for the cache (db 0) and the broker (db 1)
    broker.start()
    worker = None
    try:
        env = clean_env(
            venv_dir, REDIS_URL=f"{broker.url}/0", CELERY_BROKER_URL=f"{broker.url}/1", METRICS_TOKEN="t0ken"
        )
        project = startproject(venv_dir, tmp_path / "site", env)
        blocks = readme_blocks()
        assert [p for p, _, _ in readme_blocks()] == [
            "mysite/settings.py",
            "mysite/celery.py",
            "mysite/__init__.py",
            "mysite/urls.py",
            "try_aicache.py",
        ]
        for path, mode, code in blocks:
            target = project / path
            if mode == "append":
                target.write_text(target.read_text() + "\n" + code)
            else:
                target.write_text(code)
        for command in ("python manage.py migrate", "python manage.py check"):
            run(readme_command(command), cwd=project, env=env, shell=True)

        log = tmp_path / "worker.log"
        worker = subprocess.Popen(
            readme_command("celery -A mysite worker") + " --concurrency=1",
            shell=True,
            cwd=project,
            env=env,
            stdout=open(log, "w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while " ready." not in log.read_text():
            assert worker.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the worker did not start:\n" + log.read_text()[-3000:]
            time.sleep(0.2)

        started = time.monotonic()
        script = run(readme_command("python try_aicache.py"), cwd=project, env=env, shell=True)
        script_seconds = time.monotonic() - started
        lines = script.stdout.splitlines()
        assert lines[0] == "False compute" and len(lines) == 4, script.stdout
        assert all(line in ("True memory", "True redis") for line in lines[1:3]), script.stdout
        own = lines[3]  # the process's own figures: the database must end up with exactly these
        assert own == "2 hits, 1 misses", own  # README's figures: one get_or_compute miss is one miss
        assert script_seconds < 20

        stats_command = readme_command("python manage.py shell ")
        deadline = time.monotonic() + 60
        while (figures := run(stats_command, cwd=project, env=env, shell=True).stdout.strip()) != own:
            assert time.monotonic() < deadline, (
                f"stats never showed the script's reads: {figures!r}\n" + (log.read_text()[-3000:])
            )
            time.sleep(0.5)
        assert "aicache.monitoring.ingest_batch" in log.read_text()

        # The one-line URL wiring serves /metrics (token from the environment) and the monitoring API.
        web = run(
            [
                str(venv_dir / "bin" / "python"),
                "-c",
                SETUP + "from django.contrib.auth.models import User\n"
                "from django.test import Client\n"
                "c = Client(HTTP_HOST='localhost')\n"
                "print(c.get('/metrics', HTTP_AUTHORIZATION='Bearer t0ken').status_code)\n"
                "c.force_login(User.objects.create_superuser('ops', 'ops@example.com', 'pw-unused-9'))\n"
                "status = lambda url: c.get(url).status_code\n"
                "print(status('/api/aicache/docs/'), status('/api/aicache/schema/'))\n"
                "print(status('/admin/aicache/dashboard/'), status('/admin/aicache/entries/'))\n"
                "stats = c.get('/api/aicache/stats/', {'last': '1h'}).json()\n"
                "print(stats['cache_hits'], 'hits,', stats['cache_misses'], 'misses')\n",
            ],
            cwd=project,
            env=env,
        )
        assert web.stdout.splitlines() == ["200", "200 200", "200 200", own], web.stdout
    finally:
        if worker is not None and worker.poll() is None:
            os.killpg(worker.pid, 15)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, 9)
                worker.wait()
        broker.stop()


def test_every_module_of_the_installed_wheel_imports(all_venv, tmp_path):
    env = clean_env(all_venv)
    project = startproject(all_venv, tmp_path / "imports", env)
    settings = project / "mysite" / "settings.py"
    settings.write_text(settings.read_text() + "\n" + readme_blocks()[0][2])
    script = """
import importlib, os, pkgutil, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "mysite.settings"
import django
django.setup()
import aicache
assert "site-packages" in aicache.__file__, aicache.__file__
names = sorted(m.name for m in pkgutil.walk_packages(aicache.__path__, "aicache."))
for name in names:
    importlib.import_module(name)
try:
    import aicache_project
except ImportError:
    pass
else:
    sys.exit("aicache_project is installed")
print(len(names))
"""
    result = run([str(all_venv / "bin" / "python"), "-c", script], cwd=project, env=env)
    repo_modules = [
        p
        for p in (ROOT / "aicache").rglob("*.py")
        if "__pycache__" not in p.parts and p.name != "__init__.py"
    ]
    assert int(result.stdout.strip()) >= len(repo_modules)
