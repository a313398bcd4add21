import os
import subprocess
import sys

from django.conf import settings


def test_production_settings_pass_check_deploy():
    env = dict(
        os.environ,
        DATABASE_URL=settings.DATABASE_URL,
        SECRET_KEY="a-production-like-secret-key-that-is-long-and-random-0123456789abcdef",
        DEBUG="0",
        ALLOWED_HOSTS="proactive.example.com",
        DJANGO_SETTINGS_MODULE="proactive.settings",
    )
    env.pop("HTTPS_ONLY", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env=env,
        capture_output=True,
        text=True,
        cwd=settings.BASE_DIR,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_security_headers_are_sent(db, client, settings):
    response = client.get("/login/")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
