"""The README's production path, run as an operator would, on a fresh database.

`python manage.py serve` (what `make serve` runs) with DEBUG=0, DATABASE_URL, CELERY_BROKER_URL and
the production static storage (WhiteNoise's compressed manifest): it migrates, collects static
files, declares the beat schedule and starts gunicorn, a Celery worker and beat. Then, through
gunicorn: the login page, a tenant page after logging in, the widget script and the stylesheet
the pages link to. SIGTERM stops all three processes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import psycopg
import pytest
import requests
from django.conf import settings

from proactive.management.commands.serve import production_commands

pytestmark = pytest.mark.slow

ROOT = Path(settings.BASE_DIR)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def fresh_database():
    db = settings.DATABASES["default"]
    name = f"proactive_prod_{uuid.uuid4().hex[:8]}"
    params = {
        "host": db["HOST"] or None,
        "port": db["PORT"] or None,
        "user": db["USER"],
        "dbname": "postgres",
    }
    if db["PASSWORD"]:
        params["password"] = db["PASSWORD"]
    with psycopg.connect(**params, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    auth = f"{db['USER']}:{db['PASSWORD']}@" if db["PASSWORD"] else f"{db['USER']}@"
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    yield f"postgresql://{auth}{host}/{name}"
    with psycopg.connect(**params, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _env(database_url: str, static_root: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_", "REDIS_URL", "CELERY_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="proactive.settings",
        ENV_FILE="",
        DEBUG="0",
        SECRET_KEY="production-path-test-" + uuid.uuid4().hex,
        DATABASE_URL=database_url,
        CELERY_BROKER_URL="redis://127.0.0.1:6379/14",
        ALLOWED_HOSTS="127.0.0.1",
        HTTPS_ONLY="0",  # plain HTTP on loopback, as behind a TLS proxy
        STATIC_ROOT=str(static_root),
    )
    return env


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "serve exited before the web server answered"
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def test_the_readme_lists_every_production_step():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Production", 1)[1].split("\n## ", 1)[0]
    for step in (
        "DEBUG=0",
        "SECRET_KEY=",
        "DATABASE_URL=",
        "CELERY_BROKER_URL=",
        "python manage.py migrate",
        "python manage.py collectstatic --noinput",
        "python manage.py setup_periodic_tasks",
        "gunicorn proactive.wsgi:application",
        "celery -A proactive worker",
        "celery -A proactive beat",
        "make serve",
    ):
        assert step in section, f"the README's production section does not say {step!r}"
    commands = production_commands(bind="127.0.0.1:8000", web_workers=1, worker_concurrency=1)
    assert commands["web"][2:4] == ["gunicorn", "proactive.wsgi:application"]
    assert commands["worker"][2:6] == ["celery", "-A", "proactive", "worker"]
    assert commands["beat"][2:6] == ["celery", "-A", "proactive", "beat"]


def test_serve_runs_the_production_path_on_a_fresh_database(fresh_database, tmp_path):
    env = _env(fresh_database, tmp_path / "static")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    serve = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--bind", f"127.0.0.1:{port}", "--web-workers", "1"]
        + ["--worker-concurrency", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    children: list[psutil.Process] = []
    try:
        _wait_http(f"{base}/healthz", serve)
        children = psutil.Process(serve.pid).children(recursive=True)
        names = " ".join(" ".join(c.cmdline()) for c in children)
        assert "gunicorn" in names and " worker" in names and " beat" in names, names
        assert (tmp_path / "static" / "staticfiles.json").exists(), "collectstatic wrote no manifest"

        created = subprocess.run(
            [sys.executable, "manage.py", "create_tenant", "prodco", "--name", "Prod Co"]
            + ["--admin-email", "ops@prod.test", "--admin-password", "a-long-prod-password-1"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(created.stdout)["tenant"] == "prodco"

        s = requests.Session()
        login = s.get(f"{base}/login/", timeout=10)
        assert login.status_code == 200, login.text[:500]
        css = re.search(r'href="(/static/css/app\.[0-9a-f]{12}\.css)"', login.text)
        assert css, "the login page does not link the hashed stylesheet"
        stylesheet = s.get(base + css.group(1), timeout=10)
        assert stylesheet.status_code == 200 and "max-age" in stylesheet.headers["Cache-Control"]

        token = s.cookies["csrftoken"]
        logged_in = s.post(
            f"{base}/login/",
            data={
                "username": "ops@prod.test",
                "password": "a-long-prod-password-1",
                "csrfmiddlewaretoken": token,
            },
            headers={"Referer": f"{base}/login/"},
            timeout=10,
        )
        assert logged_in.status_code == 200, logged_in.text[:500]
        page = s.get(f"{base}/t/prodco/", timeout=30)
        assert page.status_code == 200 and "Prod Co" in page.text, page.text[:500]
        assert re.search(r'src="/static/vendor/htmx\.min\.[0-9a-f]{12}\.js"', page.text)

        widget = requests.get(f"{base}/static/widget/proactive-widget.js", timeout=10)
        assert widget.status_code == 200
        assert "javascript" in widget.headers["Content-Type"]
        assert "attachShadow" in widget.text
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            out, _ = serve.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
            out, _ = serve.communicate()
    assert serve.returncode == 0, out.decode(errors="replace")[-3000:]
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"left running after serve stopped: {alive}"
