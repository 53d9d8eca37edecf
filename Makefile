VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.avatarlab-installed

.PHONY: demo test test-fast lint bench setup clean

$(STAMP): pyproject.toml scripts/bootstrap.sh
	VENV=$(VENV) bash scripts/bootstrap.sh
	touch $(STAMP)

setup: $(STAMP)

## Main job on built-in defaults: the bundled portrait, analysed and animated.
demo: $(STAMP)
	$(PY) -m avatarlab demo -o out/demo

## The test suite (installs everything first): TEST_WORKERS processes share the tests
## (a module stays on one worker, so its fixtures are built once), then the tests marked
## serial (latency, wall-time and memory bounds) run alone.
TEST_WORKERS ?= 2
test: $(STAMP)
	@status=0; \
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadscope -m "not serial" || status=$$?; \
	$(PY) -m pytest -q -m serial || status=$$?; \
	exit $$status

## The quick loop while developing: everything but the tests marked slow or faults.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not faults"

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

## Speed and accuracy figures against references (several minutes; see README).
bench: $(STAMP)
	$(PY) bench/face.py
	$(PY) bench/generate.py --skip-clips
	$(PY) bench/metrics.py
	$(PY) bench/speech.py

clean:
	rm -rf out build .pytest_cache .mypy_cache .ruff_cache
