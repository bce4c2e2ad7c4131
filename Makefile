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

.PHONY: run test test-sqlite test-postgres venv migrate worker lint schema fuzz bench clean

$(BIN)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.13 or 3.12 is required (pyenv install 3.13)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

# Written once from .env.example with a generated secret key. When .env.example gains a variable
# later, an existing .env gets that line appended (its own values are never changed), so a setting
# added to the example - e.g. DJANGO_SECURE_HTTPS=false for plain-http `make run` - reaches it.
.env: .env.example
	@if [ -f .env ]; then \
		for key in $$(sed -n 's/^\([A-Z_][A-Z0-9_]*\)=.*/\1/p' .env.example); do \
			grep -q "^$$key=" .env || { grep "^$$key=" .env.example >> .env; echo "added $$key to .env (from .env.example)"; }; \
		done; touch .env; \
	else \
		sed "s|^DJANGO_SECRET_KEY=.*|DJANGO_SECRET_KEY=$$(LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 50)|" .env.example > .env; \
		echo "wrote .env with a generated DJANGO_SECRET_KEY"; \
	fi

migrate: venv .env
	$(BIN)/python manage.py migrate --no-input

# The access log names the request line, status, size, time and correlation id - never a header
# such as Authorization, nor a body, nor (unlike gunicorn's default format) a Basic-auth user name.
# With DPM_LOG_FORMAT=json the same fields are one JSON object per line (dpm_async/server.py).
# gunicorn.conf.py: settings checked before any worker starts, metrics in multiprocess mode,
# correlation ids on gunicorn's own lines (docs/deployment.md).
ACCESS_LOG_FORMAT := %(h)s %(t)s "%(r)s" %(s)s %(b)s %(M)sms corr=%({x-correlation-id}o)s

run: migrate
	@echo "serving on http://$(HOST):$(PORT)/  (API docs: http://$(HOST):$(PORT)/docs/)"
	@echo "API token: $(BIN)/python manage.py issue_token <username> --create-user, then send -H 'Authorization: Token <key>'"
	$(BIN)/gunicorn dpm_async.wsgi:application --config gunicorn.conf.py --bind $(HOST):$(PORT) \
		--workers $(WEB_WORKERS) --threads $(WEB_THREADS) --timeout 600 \
		--access-logfile - --access-logformat '$(ACCESS_LOG_FORMAT)'

test: venv .env
	$(BIN)/python manage.py check
	$(BIN)/python manage.py makemigrations --check --dry-run
	DJANGO_DEBUG=false $(BIN)/python manage.py spectacular --validate --fail-on-warn --file /dev/null
	$(BIN)/ruff check .
	$(BIN)/mypy
	@if $(PG_REACHABLE); then \
		echo "== pass 1/2: the suite on SQLite (PostgreSQL-only tests run in pass 2) =="; \
		$(BIN)/pytest -m "not postgres" && \
		echo "== pass 2/2: the suite on PostgreSQL at 127.0.0.1:5432 ==" && \
		$(MAKE) --no-print-directory test-postgres; \
	else \
		echo "== PostgreSQL at 127.0.0.1:5432 is not reachable: the suite on SQLite only (PostgreSQL-only tests skip) =="; \
		$(BIN)/pytest; \
	fi

# The whole suite on SQLite (the tests that need PostgreSQL skip).
test-sqlite: venv .env
	$(BIN)/pytest

# The whole suite on PostgreSQL, worker processes included. The database name carries the shell's
# pid, so concurrent runs never share a test database (pytest-django creates test_<name>).
PG_TEST_URL ?= postgres://postgres@127.0.0.1:5432/dpm_async_ci
PG_REACHABLE = $(BIN)/python -c "import psycopg; psycopg.connect('host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3').close()" 2>/dev/null
test-postgres: venv .env
	DATABASE_URL=$(PG_TEST_URL)_$$$$ $(BIN)/pytest

# A tasks worker for WORKER mode (docs/deployment.md): run as many as there are cores to spare, on
# any host that reaches the database. It polls an empty queue every WORKER_INTERVAL seconds (a
# busy worker takes the next task at once) and recovers dead workers' operations by itself.
WORKER_INTERVAL ?= 0.1
worker: migrate
	$(BIN)/python manage.py db_worker --no-reload --interval $(WORKER_INTERVAL)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

schema: venv .env
	$(BIN)/python manage.py spectacular --validate --fail-on-warn --file schema.yaml

# Schemathesis against /schema/ of a service started like `make run` (scratch database, a token):
# every endpoint, FUZZ_EXAMPLES cases each (default 100, about a minute). Prints the request count.
fuzz: venv .env
	$(BIN)/python .ci/fuzz.py

bench: venv .env
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) db.sqlite3 db.sqlite3-wal db.sqlite3-shm staticfiles
