# The README's two set-up commands: `make run` and `make test`. Both create the virtualenv on
# first use (Python 3.13 as .python-version says, else 3.12), install, and migrate.

PORT ?= 8000
HOST ?= 127.0.0.1
WEB_WORKERS ?= 2
WEB_THREADS ?= 4
VENV := .venv
BIN := $(VENV)/bin
PYENV_ROOT ?= $(HOME)/.pyenv
PY_CANDIDATES := $(wildcard $(PYENV_ROOT)/versions/3.13*/bin/python3) $(shell command -v python3.13 2>/dev/null) \
                 $(wildcard $(PYENV_ROOT)/versions/3.12*/bin/python3) $(shell command -v python3.12 2>/dev/null)
PYTHON ?= $(firstword $(PY_CANDIDATES))

.PHONY: run test test-sqlite test-postgres venv migrate worker lint schema bench clean

$(BIN)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.13 or 3.12 is required (pyenv install 3.13)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

.env:
	@sed "s|^DJANGO_SECRET_KEY=.*|DJANGO_SECRET_KEY=$$(LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 50)|" .env.example > .env
	@echo "wrote .env with a generated DJANGO_SECRET_KEY"

migrate: venv .env
	$(BIN)/python manage.py migrate --no-input

run: migrate
	@echo "serving on http://$(HOST):$(PORT)/  (API docs: http://$(HOST):$(PORT)/docs/)"
	$(BIN)/gunicorn dpm_async.wsgi:application --bind $(HOST):$(PORT) \
		--workers $(WEB_WORKERS) --threads $(WEB_THREADS) --timeout 600 --access-logfile -

test: venv .env
	$(BIN)/python manage.py check
	$(BIN)/python manage.py makemigrations --check --dry-run
	DJANGO_DEBUG=false $(BIN)/python manage.py spectacular --validate --fail-on-warn --file /dev/null
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: venv
	$(BIN)/ruff check .

schema: venv .env
	$(BIN)/python manage.py spectacular --validate --fail-on-warn --file schema.yaml

bench: venv .env
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) db.sqlite3 db.sqlite3-wal db.sqlite3-shm staticfiles
