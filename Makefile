PYTHON ?= python3
# One pytest worker per core; each test file stays on one worker (its module fixtures
# are built once).
PYTEST_ARGS ?= -n auto --dist loadfile

.PHONY: install test demo bench

install:
	$(PYTHON) -m pip install -q -r requirements-dev.txt

test: install
	$(PYTHON) -m pytest -q $(PYTEST_ARGS) tests

demo: install
	bash demo/run_demo.sh
