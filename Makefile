# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Set up, migrate, load the Okuma data and serve every page on http://127.0.0.1:8000
run: $(STAMP)
	$(PY) -m routing.lns
	$(VENV)/bin/okuma migrate
	$(VENV)/bin/okuma load-data
	$(VENV)/bin/okuma serve --demo

## Set up and run every test (unit, integration on SQLite and PostgreSQL, e2e in Chromium)
test: $(STAMP)
	$(PY) -m routing.lns
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check routing transit api driver_app
	$(VENV)/bin/mypy routing transit

## Every measurement (several minutes; each script ends with one JSON line)
bench: $(STAMP)
	$(PY) bench/quote.py
	$(PY) bench/traveltime.py
	$(PY) bench/booking_http.py
	$(PY) bench/ws_fanout.py
	$(PY) bench/reoptimise.py
	$(PY) bench/feeds.py
	$(PY) bench/darp.py a --time-limit 10 --out bench/out/a

clean:
	rm -rf $(VENV) var
