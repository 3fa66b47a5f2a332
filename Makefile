# Proxmox Monitor: build, run locally, test, lint, static release binaries.
# `make help` lists the targets. Local state (database, agent config, logs, pids) lives in ./var.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
VAR := ./var
LISTEN ?= 127.0.0.1:4000
SERVER := ./target/debug/proxmox-monitor-server
AGENT := ./target/debug/proxmox-monitor-agent
AGENT_CONFIG ?= $(VAR)/agent.toml
MUSL_TARGET := x86_64-unknown-linux-musl
DIST := ./dist

.PHONY: help build server agent register demo demo-stop test lint musl deb bench clean fuzz

help:
	@echo "make build              build both binaries (debug)"
	@echo "make server             run the server on $(LISTEN) with $(VAR)/server.db ($(VAR)/server.toml if present)"
	@echo "make register NAME=pve1 register a host and write $(VAR)/agent.toml for it"
	@echo "make agent              run the agent with AGENT_CONFIG (default $(VAR)/agent.toml)"
	@echo "make demo               server + agent for this machine in the background; make demo-stop ends them"
	@echo "make test               all tests (cargo test --workspace)"
	@echo "make lint               rustfmt check and clippy -D warnings"
	@echo "make fuzz               property tests of all outside input, FUZZ_CASES each (> 10^6 in all)"
	@echo "make musl               static release binaries in $(DIST)/"
	@echo "make deb                proxmox-monitor-{agent,server}_VERSION_amd64.deb in $(DIST)/ (from make musl)"
	@echo "make bench              run ./bench/run.sh"
	@echo "make clean              cargo clean and remove $(DIST)/ ($(VAR)/ is kept)"

build:
	$(CARGO) build --workspace --bins

$(VAR):
	mkdir -p $(VAR)

server: build | $(VAR)
	$(SERVER) $$( [ -f $(VAR)/server.toml ] && echo --config $(VAR)/server.toml ) \
		--database $(VAR)/server.db --listen $(LISTEN)

agent: build
	@[ -f "$(AGENT_CONFIG)" ] || { echo "$(AGENT_CONFIG) not found: run make register NAME=... first (or set AGENT_CONFIG)"; exit 1; }
	$(AGENT) --config "$(AGENT_CONFIG)" run

register: build | $(VAR)
	@[ -n "$(NAME)" ] || { echo "usage: make register NAME=hostname"; exit 1; }
	./scripts/dev.sh register "$(NAME)"

demo:
	./scripts/dev.sh demo

demo-stop:
	./scripts/dev.sh stop

# PM_REQUIRE_INTEROP=1, PM_REQUIRE_BROWSER=1 and PM_REQUIRE_PROMTOOL=1 (set by .ci/run) make
# the phoenix JS interop test, the chromium dashboard test and the promtool check of /metrics
# fail instead of skipping when node_modules, chromium or promtool is missing; likewise
# PM_REQUIRE_DEB=1 / PM_REQUIRE_LINTIAN=1 for the .deb test and PM_REQUIRE_PROMETHEUS=1 for
# the test with a real Prometheus. The .deb test packages the static binaries of $(DIST)/:
# they are built once (make musl) when missing, and reused after that.
test:
	@[ -x $(DIST)/proxmox-monitor-agent ] && [ -x $(DIST)/proxmox-monitor-server ] || $(MAKE) musl
	PM_DEB_BIN_DIR=$(abspath $(DIST)) $(CARGO) test --workspace

# Property tests of everything read from outside: frames through the channel, frame and sample
# decoding, HTTP request heads, the server's TOML, times and names (server/tests/fuzz.rs), and
# every /proc and Proxmox file parser (agent/tests/collect_robustness.rs). make test runs them
# with a few hundred cases each; this runs FUZZ_CASES each (the channel a tenth of that):
# 8 properties x 500000 + the channel's 50000 = 4.05 million cases (about a minute once built).
FUZZ_CASES ?= 500000
fuzz:
	FUZZ_CASES=$(FUZZ_CASES) $(CARGO) test --release -p proxmox-monitor-server --test fuzz
	FUZZ_CASES=$(FUZZ_CASES) $(CARGO) test --release -p proxmox-monitor-agent --test collect_robustness -- every_parser_survives

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

musl:
	@command -v musl-gcc >/dev/null || { echo "musl-gcc not found: apt-get install musl-tools"; exit 1; }
	@rustup target list --installed | grep -qx $(MUSL_TARGET) || rustup target add $(MUSL_TARGET)
	$(CARGO) build --release --target $(MUSL_TARGET) -p proxmox-monitor-server -p proxmox-monitor-agent
	mkdir -p $(DIST)
	cp target/$(MUSL_TARGET)/release/proxmox-monitor-server target/$(MUSL_TARGET)/release/proxmox-monitor-agent $(DIST)/
	@for bin in $(DIST)/proxmox-monitor-server $(DIST)/proxmox-monitor-agent; do \
		info=$$(file -b "$$bin"); echo "$$bin: $$info"; \
		case "$$info" in \
			*"statically linked"*|*"static-pie linked"*) ;; \
			*) echo "$$bin is not statically linked"; exit 1 ;; \
		esac; \
	done

deb: musl
	./packaging/deb/build.sh --bin-dir $(DIST) --out $(DIST)

bench:
	@if [ -x ./bench/run.sh ]; then ./bench/run.sh; \
	else echo "no ./bench/run.sh yet; nothing to run"; fi

clean:
	$(CARGO) clean
	rm -rf $(DIST)
