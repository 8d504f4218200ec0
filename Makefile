# Two commands do everything on a fresh Debian machine (as root):
#   make demo   create .venv, install, run the main job on the bundled default model
#   make test   create/update .venv with dev extras, install apt packages the tests need, run every test
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
APT_PACKAGES := fluidsynth fluid-soundfont-gm timgm6mb-soundfont ffmpeg g++ chromium

.PHONY: demo test install install-dev apt lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The stamp is remade whenever pyproject.toml changes, so `make` keeps the venv current.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[dev]"
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# fluidsynth and the General MIDI soundfonts render MIDI in the tests and the corpus recipe;
# ffmpeg gives `audiogen eval` its Opus reference; g++ is what torch.compile's CPU backend builds
# with (tests/lm/test_decode_cuda.py compiles the fixed-shape decode step); chromium is the browser the studio's
# tests drive headless through playwright (a dev extra that never downloads a browser of its own).
apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing apt packages:$$missing"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

demo: install
	$(BIN)/audiogen demo -o out

test: apt install-dev
	$(BIN)/python -m pytest tests

lint: install-dev
	$(BIN)/ruff check audiogen tests recipes benchmarks

bench: install
	$(BIN)/audiogen bench

clean:
	rm -rf out .pytest_cache
