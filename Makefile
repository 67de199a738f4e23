# Three entry points; each builds .venv/ from the pinned requirements on first use and reuses it after.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
REQS := requirements.txt requirements-dev.txt emulator/requirements.txt container/requirements.txt

.PHONY: workshop test lab bench proof stop-emulator clean-state

$(STAMP): $(REQS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing pinned requirements into $(VENV)/ (first run only; a few minutes)..."
	@$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@# Put the checkout on the venv's path, so notebooks and tools import helpers/ from anywhere.
	@echo "$(CURDIR)" > "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/workshop-checkout.pth"
	@touch $@

workshop: $(STAMP)
	$(PY) -m helpers workshop

test: $(STAMP)
	$(PY) -m pytest

# Jupyter refuses to start as root (containers, some cloud IDEs) unless told it may.
# `make lab PORT=8899` picks the port; without PORT, Jupyter takes 8888 or the next free one.
lab: $(STAMP)
	$(VENV)/bin/jupyter lab --ServerApp.ip=127.0.0.1 $(if $(PORT),--ServerApp.port=$(PORT) --ServerApp.port_retries=0,) \
		$(if $(filter 0,$(shell id -u)),--allow-root,) notebooks/

bench: $(STAMP)
	$(PY) -m bench

# Load, faults and bad input against the emulator and the agent; prints one JSON document of figures.
# `make proof PROFILE=short` is the profile CI runs inside `make test`.
proof: $(STAMP)
	$(PY) -m proof --profile $(or $(PROFILE),long)

# Stops the emulator the notebooks started; its state stays for the next start (clean-state removes it).
stop-emulator: $(STAMP)
	$(PY) -m helpers emulator stop

clean-state:
	@# Stop the emulator first: its state is what is being removed.
	@test ! -x $(PY) || $(PY) -c "from helpers import aws, config; aws.stop_emulator(config.load(target='local'))"
	rm -rf .workshop runs
