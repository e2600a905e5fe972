# The two commands a user needs: `make test` and `make demo`. Both set up everything themselves
# (idempotently: a second run with nothing changed does no work).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMPS := $(VENV)/.stamps
# Tests pick their own ROS domain; other variables of an outer ROS wheel venv must not leak in.
RUN := env -u _ROS_WHEELS_BOOTSTRAP_COMPLETE -u LD_LIBRARY_PATH

.PHONY: setup test test-fast lint bench demo fuzz clean
.DELETE_ON_ERROR:

setup: $(STAMPS)/editable $(STAMPS)/assets $(STAMPS)/lerobot $(STAMPS)/bags

$(STAMPS)/deps: tools/setup/bootstrap.sh $(wildcard requirements/*.txt)
	PYTHON=$(PYTHON) tools/setup/bootstrap.sh
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/interfaces: $(STAMPS)/deps tools/setup/build_interfaces.sh CMakeLists.txt package.xml $(wildcard msg/*.msg srv/*.srv action/*.action)
	tools/setup/build_interfaces.sh
	@touch $@

$(STAMPS)/editable: $(STAMPS)/interfaces setup.py setup.cfg
	$(RUN) $(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

# The LeRobot backend's own venv (.venv-lerobot): lerobot 0.4.4 pins an older torch than .venv has.
$(STAMPS)/lerobot: $(STAMPS)/deps tools/setup/lerobot_venv.sh requirements/venv-lerobot.txt
	tools/setup/lerobot_venv.sh
	@touch $@

$(STAMPS)/assets: $(STAMPS)/deps humanoid_common/fetch_assets.py humanoid_common/assets.py config/assets.yaml
	$(RUN) $(PY) -m humanoid_common.fetch_assets --into .cache/assets
	@touch $@

# The replay-test bags (.cache/bags, docs/replay.md); the tool itself skips bags whose inputs are unchanged.
$(STAMPS)/bags: $(STAMPS)/assets $(STAMPS)/editable tools/setup/build_bags.py tools/video_to_bag.py test/data/faces_scene.yaml
	$(RUN) $(PY) tools/setup/build_bags.py
	@touch $@

test: setup
	$(RUN) $(PY) -m pytest

# Unit tests only (no ROS graph, no subprocesses): seconds.
test-fast: setup
	$(RUN) $(PY) -m pytest -m "not integration"

lint: setup
	$(RUN) $(VENV)/bin/ruff check .
	$(RUN) $(VENV)/bin/ruff format --check .

bench: setup
	$(RUN) $(PY) bench/transport.py
	$(RUN) $(PY) bench/executors.py
	$(RUN) $(PY) bench/perception.py
	$(RUN) $(PY) bench/memory.py
	$(RUN) $(PY) bench/vla.py

# The long fuzz run (docs/fuzz.md): 2,000 messages per topic of every node; prints the table and
# writes it to out/fuzz/table.md. `make test` runs the same suite with 200.
fuzz: setup
	$(RUN) FUZZ_MESSAGES=2000 $(PY) -m pytest test/fuzz -o timeout=1800

# The whole stack on bundled data: out/demo.mp4 and out/report.md (docs/bringup.md).
demo: setup
	$(RUN) $(PY) tools/demo.py

clean:
	rm -rf $(VENV) .venv-lerobot build .cache out .pytest_cache .ruff_cache
