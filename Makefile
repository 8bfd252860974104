# dashvault: build, run and test. `make run` records the built-in test camera
# and `make test` runs every test; both install what a fresh Debian lacks.

SHELL := /bin/bash

CARGO ?= cargo
# Building needs only these; tests and benchmarks add TEST_APT_PACKAGES.
APT_PACKAGES := build-essential pkg-config nasm
TEST_APT_PACKAGES := ffmpeg libjpeg-turbo-progs chromium python3-venv libxml2-utils
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test bench deps test-deps rust lint clean browser-deps browser-test

run: deps
	$(CARGO) run --release -- run

test: test-deps browser-deps
	@mkdir -p target
	$(CARGO) test --release --lib --bins --tests 2>&1 | tee target/test-output.txt; exit $${PIPESTATUS[0]}
	{ $(BROWSER_TEST); } 2>&1 | tee -a target/test-output.txt; exit $${PIPESTATUS[0]}
	{ $(LIBCAMERA_TEST); } 2>&1 | tee -a target/test-output.txt; exit $${PIPESTATUS[0]}
	# Reliability at CI size: each fuzz target for a short while, and power
	# cuts through the forgetful FUSE layer where the kernel offers FUSE.
	$(MAKE) fuzz FUZZ_SECONDS=20 FUZZ_SANITIZER=none
	@if [ -c /dev/fuse ]; then $(MAKE) powercut CUTS=5; \
	else echo "powercut: skipped, no /dev/fuse on this machine"; fi

bench: test-deps
	$(CARGO) bench --bench encode
	$(CARGO) bench --bench store
	$(CARGO) bench --bench export
	$(CARGO) bench --bench http
	$(CARGO) bench --bench share
	$(LIBCAMERA_BENCH)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

# The dashboard in headless Chromium (Debian's chromium package) driven by
# playwright, pinned in tests/browser/requirements.txt and installed into a
# venv under target/; it never downloads a browser. Its result line is
# counted with the Rust tests in target/test-output.txt.
BROWSER_VENV := target/browser-venv
BROWSER_TEST = $(CARGO) build --release --bin dashvault && $(BROWSER_VENV)/bin/python tests/browser/dashboard.py

browser-test: browser-deps
	$(BROWSER_TEST)

browser-deps: deps
	@cmp -s tests/browser/requirements.txt $(BROWSER_VENV)/requirements.txt || { \
	  echo "installing the browser test driver into $(BROWSER_VENV)"; \
	  python3 -m venv $(BROWSER_VENV) && \
	  $(BROWSER_VENV)/bin/pip install -q --disable-pip-version-check -r tests/browser/requirements.txt && \
	  cp tests/browser/requirements.txt $(BROWSER_VENV)/requirements.txt; }

# Debian packages (nasm: mozjpeg's SIMD; ffmpeg and libjpeg-turbo-progs:
# reference encoders in benchmarks and judges in tests; chromium and
# python3-venv: the browser test; libxml2-utils: xmllint judges GPX files).
# Only missing ones are installed.
install_missing = missing=""; for p in $(1); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get -o DPkg::Lock::Timeout=600 update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $$missing; \
	fi

deps: rust
	@$(call install_missing,$(APT_PACKAGES))

test-deps: deps
	@$(call install_missing,$(TEST_APT_PACKAGES))

rust:
	@command -v $(CARGO) >/dev/null 2>&1 || { \
	  echo "installing Rust (Debian bookworm's rustc-web, new enough for our crates)"; \
	  $(SUDO) apt-get -o DPkg::Lock::Timeout=600 update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends cargo-web rustc-web; }

clean:
	$(CARGO) clean

# Appliance image. `make image BR_DIR=/path/to/buildroot` builds
# output/images/dashvault-rpi0w2.img with the Buildroot release named in
# buildroot-external/buildroot.version, and refuses any other (`make
# buildroot BR_DIR=...` clones that release). It needs Internet: Buildroot
# downloads its sources, and the dashvault package vendors the crates into
# its build folder, from Buildroot's cargo home when they are there
# (`cargo-fetch` seeds it) or from crates.io. Each `make image` copies the
# sources in afresh (dashvault-rebuild), so the image holds the recorder
# as the tree is now.
# `make image-test` builds a test image from Debian arm64 packages with the
# same board files, overlay and package scripts and boots it in QEMU
# (tests/image/).
# `make check-buildroot BR_DIR=...` checks the external tree offline;
# `make bindgen-cross BR_DIR=...` runs libcamera-sys's build script for the
# Pi with the clang arguments the package gives bindgen (about 2 minutes).
BR_OUTPUT ?= output
BR_DL_DIR ?= output/dl
IMAGE_TEST_OUT ?= output/image-test
BR_VERSION := $(shell cat buildroot-external/buildroot.version)
BR_GIT ?= https://gitlab.com/buildroot.org/buildroot.git
BR_MAKE = $(MAKE) -C $(BR_DIR) O=$(abspath $(BR_OUTPUT)) BR2_EXTERNAL=$(CURDIR)/buildroot-external \
	BR2_DL_DIR=$(abspath $(BR_DL_DIR))
BINDGEN_CROSS_APT_PACKAGES := g++-aarch64-linux-gnu libstdc++-12-dev-arm64-cross libc6-dev-arm64-cross \
	binutils-aarch64-linux-gnu clang-19 libclang1-19 pkg-config rsync cpio

.PHONY: image image-test image-test-deps check-buildroot cargo-fetch need-br-dir buildroot bindgen-cross

need-br-dir:
	@test -n "$(BR_DIR)" || { echo "set BR_DIR to a Buildroot $(BR_VERSION) tree (make buildroot BR_DIR=... clones it)"; exit 2; }
	@have=$$($(MAKE) -s --no-print-directory -C $(BR_DIR) print-version 2>/dev/null); \
	test "$$have" = "$(BR_VERSION)" || { \
	  echo "$(BR_DIR) is Buildroot $${have:-?}, but buildroot-external/buildroot.version pins $(BR_VERSION);"; \
	  echo "use a $(BR_VERSION) tree (make buildroot BR_DIR=...) or change the pin after checking the tree against it"; \
	  exit 2; }

buildroot:
	@test -n "$(BR_DIR)" || { echo "set BR_DIR to where Buildroot $(BR_VERSION) should go"; exit 2; }
	test -e $(BR_DIR) || git clone --depth 1 --branch $(BR_VERSION) $(BR_GIT) $(BR_DIR)
	@$(MAKE) --no-print-directory need-br-dir

cargo-fetch:
	CARGO_HOME=$(abspath $(BR_DL_DIR))/br-cargo-home $(CARGO) fetch --locked

image: need-br-dir cargo-fetch
	$(BR_MAKE) dashvault_rpi0w2_defconfig
	$(BR_MAKE) dashvault-rebuild
	$(BR_MAKE)
	@echo "image: $(BR_OUTPUT)/images/dashvault-rpi0w2.img"

image-test-deps:
	bash tests/image/deps.sh

image-test: image-test-deps
	bash tests/image/build.sh $(IMAGE_TEST_OUT)
	python3 tests/image/run.py $(IMAGE_TEST_OUT)

check-buildroot: need-br-dir
	@$(call install_missing,python3-magic flake8 shellcheck rsync cpio dnsmasq-base hostapd)
	bash tests/image/check-buildroot.sh $(BR_DIR)

bindgen-cross: need-br-dir libcamera
	@$(call install_missing,$(BINDGEN_CROSS_APT_PACKAGES))
	bash tests/buildroot/bindgen-cross.sh $(BR_DIR) $(LIBCAMERA_PREFIX)
# libcamera: `make libcamera` builds libcamera 0.7.2 with its virtual camera
# into a cache folder (ci/libcamera/README.md); once it is there, `make test`
# also runs the libcamera tests against it, and `make lint-libcamera` lints
# with the feature. build.rs records the folder as the binaries' run path.
LIBCAMERA_PREFIX ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/dashvault/libcamera-0.7.2
LIBCAMERA_PKG_CONFIG = $(firstword $(wildcard $(LIBCAMERA_PREFIX)/lib/*/pkgconfig $(LIBCAMERA_PREFIX)/lib/pkgconfig))
LIBCAMERA_CARGO = PKG_CONFIG_PATH=$(LIBCAMERA_PKG_CONFIG) $(CARGO)
LIBCAMERA_TEST = if [ -f $(LIBCAMERA_PREFIX)/.dashvault-stamp ]; then \
	  $(LIBCAMERA_CARGO) test --release --features libcamera --test libcamera; \
	else echo "libcamera tests skipped: no libcamera in $(LIBCAMERA_PREFIX) (run make libcamera)"; fi

# The capture bench records from the libcamera camera when libcamera (the
# system's, as on a Pi, or the cached one) is there to build against.
LIBCAMERA_BENCH = if PKG_CONFIG_PATH=$(LIBCAMERA_PKG_CONFIG):$$PKG_CONFIG_PATH pkg-config --exists 'libcamera >= 0.5'; then \
	  PKG_CONFIG_PATH=$(LIBCAMERA_PKG_CONFIG):$$PKG_CONFIG_PATH $(CARGO) bench --features libcamera --bench capture; \
	else $(CARGO) bench --bench capture; fi

.PHONY: libcamera lint-libcamera

libcamera:
	DASHVAULT_LIBCAMERA_PREFIX=$(LIBCAMERA_PREFIX) bash ci/libcamera/build.sh

lint-libcamera: libcamera
	$(LIBCAMERA_CARGO) clippy --release --all-targets --features libcamera -- -D warnings
# Reliability: crash-state torture, the SIGKILL loop, disk faults and
# hostile clients at full size (docs/reliability.md), and the fuzz targets.
# `make test` runs all of it at CI size.
.PHONY: torture powercut fuzz fuzz-deps
TORTURE_TESTS := --test store_torture --test kill_loop --test disk_faults --test hostile_clients
FUZZ_TARGETS := segment config_json http_request http_service range_header time_string
FUZZ_SECONDS ?= 30
# address needs rustup's sanitizer runtime; none works with any rustc.
FUZZ_SANITIZER ?= address

POWERCUT_APT_PACKAGES := python3-fusepy fuse3
CUTS ?= 30

torture: test-deps
	DASHVAULT_TORTURE=full $(CARGO) test --release $(TORTURE_TESTS) -- --nocapture --test-threads 1
	$(MAKE) powercut
	$(MAKE) fuzz

# Power cuts through a FUSE layer that forgets unsynced writes
# (tests/powercut/). Needs /dev/fuse and the right to mount.
powercut: test-deps
	@$(call install_missing,$(POWERCUT_APT_PACKAGES))
	$(CARGO) build --release --bin dashvault
	/usr/bin/python3 tests/powercut/run.py $${CARGO_TARGET_DIR:-target}/release/dashvault $(CUTS)

# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP=1 lets the stable
# toolchain accept them. Each target runs FUZZ_SECONDS from its corpus in
# fuzz/corpus (new finds stay local, see fuzz/.gitignore).
fuzz: fuzz-deps
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run -O -s $(FUZZ_SANITIZER) $$t corpus/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=1024 -print_final_stats=1 || exit 1; \
	done

fuzz-deps: deps
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
