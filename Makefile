# The README's two commands are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export FLASK_APP := wsgi
export TELEREHAB_ENV ?= development

.PHONY: install run demo-db test test-fast lint bench clean

$(BIN)/flask: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(BIN)/flask

install: $(BIN)/flask

## Migrate the SQLite database, load the demo practice, then run the web app on
## http://127.0.0.1:5000 with the scheduler and the media worker beside it (Procfile.dev)
run: install
	$(BIN)/flask db upgrade
	$(BIN)/flask seed-demo
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/honcho start -f Procfile.dev

## The whole suite: SQLite always, PostgreSQL too when TEST_DATABASE_URL is set
test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .

## Speed figures, each against a baseline measured in the same run
bench: install
	$(BIN)/python bench/run.py
	$(BIN)/python bench/checkins.py
	$(BIN)/python bench/rtm.py
	$(BIN)/python bench/video.py
	$(BIN)/python bench/exports.py
	$(BIN)/python bench/export_db.py

clean:
	rm -rf $(VENV) instance/*.sqlite3 .pytest_cache .ruff_cache
