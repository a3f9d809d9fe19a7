# Every target but `install` uses the virtualenv in .venv/, which `make install` creates.
VENV ?= .venv
PY := $(VENV)/bin/python
KAFKA := python3 tools/kafka_local.py
SQS := python3 tools/sqs_local.py

.PHONY: install dist kcat chromium kafka kafka-stop sqs sqs-stop lint format test test-unit test-integration demo bench chaos clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# The wheel a user installs (`pip install dist/kretry-*.whl`); build/ goes first, or setuptools would reuse it and
# package modules deleted since.
dist: install
	rm -rf build dist
	$(PY) -m pip wheel --no-deps --quiet -w dist .

kafka:
	$(KAFKA) start

kafka-stop:
	$(KAFKA) stop

# A real SQS API for the gateway's SQS deliveries: ElasticMQ from Maven Central on 127.0.0.1:9324, loopback only,
# queues in memory (`boto3.client("sqs", endpoint_url="http://127.0.0.1:9324")`). Idempotent, like `make kafka`.
sqs:
	$(SQS) start

sqs-stop:
	$(SQS) stop

lint: install
	$(VENV)/bin/ruff check kretry tests example tools bench
	$(VENV)/bin/ruff format --check kretry tests example tools bench
	$(VENV)/bin/mypy --strict kretry

format: install
	$(VENV)/bin/ruff format kretry tests example tools bench
	$(VENV)/bin/ruff check --fix kretry tests example tools bench

# kcat is the outside client the tests read topics with, as a user would: Debian's package.
kcat:
	@command -v kcat >/dev/null 2>&1 || { \
		sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq kcat >/dev/null; }

# chromium is the real browser the console's tests drive (Playwright, launched from /usr/bin/chromium): Debian's
# package, since `playwright install` downloads a browser build.
chromium:
	@test -x /usr/bin/chromium || { \
		sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq chromium >/dev/null; }

test: install kcat chromium
	$(VENV)/bin/pytest tests

test-unit: install
	$(VENV)/bin/pytest tests/unit

test-integration: install kcat chromium
	$(VENV)/bin/pytest tests/integration

demo: install kafka
	$(PY) -m example.demo

bench: install kafka
	$(PY) -m bench.run

chaos: install
	$(PY) -m bench.chaos

clean:
	rm -rf $(VENV) .kafka .sqs .pytest_cache .mypy_cache .ruff_cache build dist
