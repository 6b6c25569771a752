# Sotto: `make demo` runs the main job, `make test` runs every check.
# Both set up the toolchain first (.venv with the pinned Python packages,
# node_modules with the pinned MicroPython VM); nothing else is assumed.

PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
NODE    ?= node
NPM     ?= npm

.PHONY: setup test lint compile typecheck pytest pytest-pg postgres vmtest e2e powercut simvm browser chromium demo bench vectors nmea-corpus clean help

help:
	@echo "make demo    - a simulated officer raises an alert; the receiver shows it verified"
	@echo "make test    - lint, mpy-cross, type check, pytest (CPython), the MicroPython VM lane, e2e, power-cut sweep, simvm, browser"
	@echo "make e2e     - main.py unchanged in the MicroPython VM: alerts end to end, also at device speed (timing judged by make bench)"
	@echo "make powercut - a power cut at every storage operation of a whole alert (about a minute)"
	@echo "make simvm   - every scenario with the firmware in the MicroPython VM: the CPython frames, byte for byte"
	@echo "make pytest-pg - the database suites (receiver, console, CLI, provisioning) again, on a real PostgreSQL"
	@echo "make browser - the operators' console in Debian's chromium (Playwright): an operator's day"
	@echo "make bench   - benchmarks with same-run baselines (live ingest on SQLite and on PostgreSQL); writes build/bench.json"
	@echo "make vectors - regenerate tests/vectors/ (frames: the firmware in the MicroPython VM; answers: cbor2 + cryptography)"
	@echo "make nmea-corpus - fetch gpsd's real receiver logs (once, SHA-256 checked) for the NMEA tests"
	@echo "make lint    - ruff; node --check on the console's scripts and the VM tools"
	@echo "make setup   - create .venv and install the pinned Python and npm packages"

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.10 or newer" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || { echo "error: could not create $(VENV); on Debian install python3-venv" >&2; exit 1; }
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade "pip>=23"
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	@touch $@

node_modules/.installed: package.json package-lock.json
	@command -v $(NODE) >/dev/null || { echo "error: node not found; install Node.js 18 or newer" >&2; exit 1; }
	$(NPM) ci --no-audit --no-fund --loglevel=error
	@touch $@

test: setup
	$(MAKE) --no-print-directory lint compile typecheck pytest pytest-pg vmtest e2e powercut simvm browser

lint: setup
	$(VENV)/bin/ruff check .
	@for f in host_tools/receiver/console/static/js/*.js tools/vm/*.mjs; do $(NODE) --check $$f || exit 1; done

compile: setup
	$(PY) -m host_tools.firmware_build --out build/mpy

typecheck: setup
	$(PY) tools/typecheck_firmware.py

pytest: setup nmea-corpus postgres
	$(PY) -m pytest -q

# The storage lane: every suite that touches the centre's database once more with every
# database on PostgreSQL (tests/pg_support.py starts a server: initdb into a temporary
# directory, pg_ctl on a free port): the receiver, the console, every CLI data command
# through $$SOTTO_DB (tests/test_cli_tree.py), provisioning into the registry
# (tests/technician/test_provision*.py). tests/storage (kill tests, several nodes, roles)
# runs on PostgreSQL in `make pytest` already.
pytest-pg: setup postgres
	SOTTO_TEST_BACKEND=postgresql $(PY) -m pytest -q tests/receiver
	SOTTO_TEST_BACKEND=postgresql $(PY) -m pytest -q tests/console
	SOTTO_TEST_BACKEND=postgresql $(PY) -m pytest -q tests/test_cli_tree.py tests/technician/test_provision.py \
	  tests/technician/test_provision_queue.py tests/technician/test_provision_secondary.py

# Debian's PostgreSQL server binaries for the tests and `make bench` (never skipped: missing and not
# installable is an error). `postgres` installs the package when it is missing.
PG_BIN ?= $(lastword $(sort $(wildcard /usr/lib/postgresql/*/bin)))

postgres:
	@test -x "$(PG_BIN)/initdb" -a -x "$(PG_BIN)/pg_ctl" || { echo "installing Debian's postgresql for the storage tests"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql; } || \
	  { echo "error: PostgreSQL's initdb/pg_ctl are missing and apt-get could not install postgresql; the storage tests and make bench need them (run as root, or install the postgresql package)" >&2; exit 1; }
	@ls /usr/lib/postgresql/*/bin/initdb /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || \
	  { echo "error: PostgreSQL's initdb/pg_ctl still missing after installing postgresql" >&2; exit 1; }

# gpsd 3.22's regression logs (real receivers, BSD-2-Clause) from Debian's source package,
# downloaded once into build/nmea-corpus/ and checked against their SHA-256
# (tools/fetch_nmea_corpus.py, tests/data/nmea/README.md); tests/test_nmea_differential.py needs them.
nmea-corpus: setup
	$(PY) tools/fetch_nmea_corpus.py

vmtest: setup
	$(NODE) tools/vm/test.mjs tests/firmware

# The end-to-end lane (tools/vm/e2e.mjs): boot.py and main.py unchanged in the VM over
# stand-ins for the board, a byte-level A7670 and a receiver; then the host re-checks
# every stored frame with cbor2/cryptography and the audio against the microphone's signal.
e2e: setup
	rm -rf build/e2e
	$(NODE) tools/vm/e2e.mjs --out build/e2e
	$(PY) tools/vm/e2e_verify.py build/e2e

powercut: setup
	tools/pytest_shards.sh 2 $(PY) -m pytest -q -m powercut_sweep tests/simulator/test_powercut_sweep.py

# The simulator's VM runtime (simulator/vmruntime.py) over every shipped scenario of up
# to an hour: the same frames, acknowledgements and timeline as the CPython runtime.
# Two shards side by side, one per core (tools/pytest_shards.sh): the runs are in
# virtual time and each receiver binds its own port, so they cannot disturb each other.
simvm: setup
	tools/pytest_shards.sh 2 $(PY) -m pytest -q -m vm_scenarios tests/simulator/test_vm_runtime.py

# The console's browser lane: Playwright drives Debian's chromium (never a browser
# Playwright would download); `chromium` installs the Debian package when it is missing.
CHROMIUM ?= /usr/bin/chromium

chromium:
	@test -x $(CHROMIUM) || { echo "installing Debian's chromium for the browser tests"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; } || \
	  { echo "error: $(CHROMIUM) is missing and apt-get could not install chromium; the browser tests need it (run as root, or install the chromium package)" >&2; exit 1; }
	@test -x $(CHROMIUM) || { echo "error: $(CHROMIUM) still missing after installing chromium" >&2; exit 1; }

browser: setup chromium
	SOTTO_CHROMIUM=$(CHROMIUM) $(PY) -m pytest -q -m browser tests/console

demo: setup
	$(PY) -m simulator.demo

bench: setup postgres
	$(PY) bench/run.py

vectors: setup
	$(PY) tools/make_vectors.py
	$(PY) tools/make_answer_vectors.py

clean:
	rm -rf build .pytest_cache .ruff_cache
