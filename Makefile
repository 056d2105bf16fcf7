# Two commands for a fresh Debian/Ubuntu machine, as root:
#   make run    set everything up, then start netjail-tui
#   make test   set everything up, then run the whole suite inside a private network namespace
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.netjail-installed
SYSTEM_TOOLS := iptables-legacy ip ss unshare setpriv nsenter gcc ping
PYTEST_ARGS ?=

.PHONY: all setup system run test check bench clean

all: test

system:
	@missing=""; \
	for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	ldconfig -p 2>/dev/null | grep -q 'libseccomp.so.2' || missing="$$missing libseccomp"; \
	$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages for:$$missing"; \
	  if [ "$$(id -u)" -ne 0 ]; then echo "make: need root to apt-get install (missing:$$missing)" >&2; exit 3; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends \
	    iptables iproute2 util-linux libseccomp2 python3-venv gcc libc6-dev iputils-ping >/dev/null; \
	fi

$(STAMP): pyproject.toml | system
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: system $(STAMP)

run: setup
	$(VENV)/bin/netjail-tui

# The suite runs in a private network namespace (loopback up): nothing touches this machine's
# real firewall. pytest's exit 5 (no tests collected) fails the target like any other failure.
test: setup
	@if [ "$$(id -u)" -ne 0 ]; then echo "make test: needs root (private netns, cgroups, iptables)" >&2; exit 3; fi
	unshare --net -- sh -c 'ip link set lo up && exec $(PY) -m pytest -q -ra $(PYTEST_ARGS)'

check: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	@# mypy must see the folders under their installed names (netjail.backends ...)
	mkdir -p .typecheck/netjail
	for d in app widgets backends; do ln -sfn ../../$$d .typecheck/netjail/$$d; done
	MYPYPATH=.typecheck $(VENV)/bin/mypy --explicit-package-bases -p netjail.backends
	PYTHONPATH=.typecheck $(VENV)/bin/lint-imports

bench: setup
	unshare --net -- sh -c 'ip link set lo up && for b in bench/*.py; do $(PY) $$b || exit 1; done'

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
