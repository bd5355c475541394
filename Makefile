PYTHON ?= python3
PYTEST_ARGS ?=

.PHONY: install test demo bench

install:
	$(PYTHON) -m pip install -q -r requirements-dev.txt

test: install
	$(PYTHON) -m pytest -q $(PYTEST_ARGS) tests

demo: install
	bash demo/run_demo.sh
