# Developer shortcuts; CI runs .ci/run, which runs `make check` and the tests too.
PYTHON ?= python

.PHONY: test check bench tiny-server

test:
	$(PYTHON) -m pytest -q tests

check:
	$(PYTHON) -m ruff check llamavis tests bench
	$(PYTHON) -m mypy llamavis

bench:
	$(PYTHON) bench/run.py

tiny-server:
	scripts/tiny-server.sh
