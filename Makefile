# Two commands for a fresh Debian/Ubuntu machine, as root:
#   make run    set everything up, then start netjail-tui
#   make test   set everything up, then run the whole suite inside a private network namespace
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.netjail-installed
LAUNCHER := $(VENV)/.netjail-launcher
# Every program netjail, the suite and bench/ run, as program:debian-package (tests/unit/
# test_system_tools.py scans tests/ and bench/ and fails when one is missing here). The iptables*
# entries are the iptables backend's own (BackendInfo.tools in backends/firewall/registry.py, checked
# by tests/unit/test_firewall_registry.py): a new firewall backend adds its tools to both.
SYSTEM_TOOLS := iptables:iptables iptables-legacy:iptables ip6tables-legacy:iptables \
  iptables-legacy-save:iptables ip6tables-legacy-save:iptables \
  iptables-legacy-restore:iptables ip6tables-legacy-restore:iptables \
  nft:nftables ip:iproute2 ss:iproute2 \
  unshare:util-linux setpriv:util-linux nsenter:util-linux flock:util-linux taskset:util-linux \
  groupadd:passwd groupdel:passwd getent:libc-bin sh:dash sleep:coreutils true:coreutils ln:coreutils mkdir:coreutils bash:bash \
  gcc:gcc ping:iputils-ping pasta:passt iperf3:iperf3 tcpdump:tcpdump \
  systemd-nspawn:systemd-container systemctl:systemd systemd-run:systemd \
  cat:coreutils test:coreutils tr:coreutils kill:procps pgrep:procps find:findutils
# libnftables' Python binding (not on PyPI): the nftables backend loads it from the system's
# dist-packages by path (backends/firewall/nft_binding.py)
NFT_BINDING := /usr/lib/python3/dist-packages/nftables/nftables.py
# `make test` exits with this (netjail's "unsupported environment") when a program is missing.
EXIT_MISSING_TOOL := 4
PYTEST_ARGS ?=

.PHONY: all setup system check-tools run test check bench clean

all: test

# Installs only the packages of what is missing.
system:
	@missing=""; packages=""; \
	for t in $(SYSTEM_TOOLS); do \
	  command -v $${t%%:*} >/dev/null 2>&1 || { missing="$$missing $${t%%:*}"; packages="$$packages $${t##*:}"; }; \
	done; \
	ldconfig -p 2>/dev/null | grep -q 'libseccomp.so.2' || { missing="$$missing libseccomp"; packages="$$packages libseccomp2"; }; \
	[ -f $(NFT_BINDING) ] || { missing="$$missing python3-nftables"; packages="$$packages python3-nftables"; }; \
	[ -e /usr/include/stdio.h ] || { missing="$$missing libc-headers"; packages="$$packages libc6-dev"; }; \
	$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { missing="$$missing python3-venv"; packages="$$packages python3-venv"; }; \
	if [ -n "$$missing" ]; then \
	  packages=$$(printf '%s\n' $$packages | sort -u | tr '\n' ' '); \
	  echo "installing system packages for:$$missing ($$packages)"; \
	  if [ "$$(id -u)" -ne 0 ]; then echo "make: need root to apt-get install (missing:$$missing)" >&2; exit 3; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$packages >/dev/null; \
	fi

# One line naming what is missing, before pytest starts (exit $(EXIT_MISSING_TOOL)).
check-tools:
	@missing=""; \
	for t in $(SYSTEM_TOOLS); do command -v $${t%%:*} >/dev/null 2>&1 || missing="$$missing $${t%%:*} ($${t##*:})"; done; \
	[ -f $(NFT_BINDING) ] || missing="$$missing $(NFT_BINDING) (python3-nftables)"; \
	if [ -n "$$missing" ]; then echo "make test: missing programs:$$missing" >&2; exit $(EXIT_MISSING_TOOL); fi

$(STAMP): pyproject.toml | system
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# pip's console script runs `site` and the venv's .pth files (~10-15 ms a command): `netjail`
# is replaced by app/launcher.py's, again after every install
$(LAUNCHER): app/launcher.py $(STAMP)
	$(PY) -I -m netjail.app.launcher $(VENV)/bin
	touch $(LAUNCHER)

setup: system $(STAMP) $(LAUNCHER)

run: setup
	$(VENV)/bin/netjail-tui

# The suite runs in private network namespaces (loopback up): nothing touches this machine's
# real firewall. tests/run_parallel.py runs the test files side by side, each in a namespace of
# its own (TEST_JOBS at a time, default: CPUs + 1); with PYTEST_ARGS, one ordinary session.
# pytest's exit 5 (no tests collected) fails the target like any other failure.
TEST_JOBS ?= 0
test: setup check-tools
	@if [ "$$(id -u)" -ne 0 ]; then echo "make test: needs root (private netns, cgroups, iptables)" >&2; exit 3; fi
	unshare --net -- sh -c 'ip link set lo up && exec $(PY) tests/run_parallel.py -j $(TEST_JOBS) $(PYTEST_ARGS)'

check: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	@# mypy must see the folders under their installed names (netjail.backends ...)
	mkdir -p .typecheck/netjail
	for d in app widgets backends; do ln -sfn ../../$$d .typecheck/netjail/$$d; done
	MYPYPATH=.typecheck $(VENV)/bin/mypy --explicit-package-bases -p netjail.backends -p netjail.app -p netjail.widgets
	@# the TUI's engine double must implement the EngineAPI the TUI types against
	MYPYPATH=.typecheck $(VENV)/bin/mypy --explicit-package-bases tests/tui/fakes.py
	PYTHONPATH=.typecheck $(VENV)/bin/lint-imports

bench: setup
	unshare --net -- sh -c 'ip link set lo up && for b in bench/*.py; do $(PY) $$b || exit 1; done'

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
