# dashvault: build, run and test. `make run` records the built-in test camera
# and `make test` runs every test; both install what a fresh Debian lacks.

SHELL := /bin/bash

CARGO ?= cargo
APT_PACKAGES := build-essential pkg-config nasm ffmpeg libjpeg-turbo-progs
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test bench deps rust lint clean

run: deps
	$(CARGO) run --release -- run

test: deps
	@mkdir -p target
	$(CARGO) test --release --lib --bins --tests 2>&1 | tee target/test-output.txt; exit $${PIPESTATUS[0]}

bench: deps
	$(CARGO) bench --bench encode
	$(CARGO) bench --bench store
	$(CARGO) bench --bench export
	$(CARGO) bench --bench http

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

# Debian packages the build and the tests use (nasm: mozjpeg's SIMD;
# ffmpeg and libjpeg-turbo-progs: reference encoders in benchmarks and
# decoders in tests).
deps: rust
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

rust:
	@command -v $(CARGO) >/dev/null 2>&1 || { \
	  echo "installing Rust (Debian bookworm's rustc-web, new enough for our crates)"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends cargo-web rustc-web; }

clean:
	$(CARGO) clean
