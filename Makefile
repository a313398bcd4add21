# The two commands: `make demo` runs the product, `make test` runs the whole suite.
# Both start with `make install`, which works on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install browser demo serve test test-slow lint format bench

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# Debian's Chromium for the Playwright browser tests (Playwright cannot download browsers here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi; }

# Local development settings that `python manage.py ...` reads in a plain shell (proactive/settings.py).
# Written once, never committed (.gitignore); `make serve` and the tests do not rely on it.
.env:
	printf '# Local development (written by make demo). Production sets its variables in the environment.\nDEBUG=1\nHTTPS_ONLY=0\nDEMO=1\n' > .env

demo: install .env
	DEBUG=$${DEBUG:-1} HTTPS_ONLY=$${HTTPS_ONLY:-0} $(BIN)/python manage.py run_demo

# Production: migrate, collectstatic, setup_periodic_tasks, then gunicorn + Celery worker + beat
# (proactive/management/commands/serve.py). Needs DEBUG=0, SECRET_KEY, DATABASE_URL, CELERY_BROKER_URL.
serve: install
	$(BIN)/python manage.py serve

test: install browser lint
	$(BIN)/python manage.py makemigrations --check --dry-run --settings=proactive.test_settings >/dev/null
	$(BIN)/pytest

test-slow: install
	$(BIN)/pytest -m slow -p no:randomly --override-ini="addopts=-q --reuse-db"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

format:
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
