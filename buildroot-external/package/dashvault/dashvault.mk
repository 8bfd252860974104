################################################################################
#
# dashvault
#
################################################################################

# The crate is the top of the repository this external tree lives in.
DASHVAULT_VERSION = local
DASHVAULT_SITE = $(BR2_EXTERNAL_DASHVAULT_PATH)/..
DASHVAULT_SITE_METHOD = local
DASHVAULT_LICENSE = MIT or Apache-2.0
DASHVAULT_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude /target --exclude /output --exclude /buildroot-external \
	--exclude /tests --exclude /data --exclude /.cargo --exclude /VENDOR

# Buildroot vendors the crates of downloaded cargo packages when it
# downloads them, but not those of a local package. So they are vendored
# here, into VENDOR in the build folder with the .cargo/config.toml that
# points cargo at it, as Buildroot does for the others; the build then
# runs --offline like any cargo package's. The crates come from
# $(BR_CARGO_HOME) when they are there (make cargo-fetch seeds it, and
# each vendoring fills it), else from crates.io. This runs before every
# build, as a local package is copied in again on every rebuild, and
# vendors again only when Cargo.lock changed.
define DASHVAULT_VENDOR_CRATES
	cd $(@D) && if ! cmp -s Cargo.lock .cargo/vendored-Cargo.lock; then \
		rm -rf VENDOR .cargo && mkdir .cargo && \
		{ $(HOST_MAKE_ENV) CARGO_HOME=$(BR_CARGO_HOME) \
			cargo vendor --locked --offline VENDOR >.cargo/config.toml 2>/dev/null || \
		$(HOST_MAKE_ENV) CARGO_HOME=$(BR_CARGO_HOME) \
			cargo vendor --locked VENDOR >.cargo/config.toml; } && \
		cp Cargo.lock .cargo/vendored-Cargo.lock; \
	fi
endef
DASHVAULT_PRE_BUILD_HOOKS += DASHVAULT_VENDOR_CRATES
# The appliance encodes share clips with the Pi's hardware encoder, so the
# default software H.264 encoder (OpenH264 from source) is left out.
DASHVAULT_CARGO_BUILD_OPTS += --no-default-features
DASHVAULT_CARGO_INSTALL_OPTS += --no-default-features
ifeq ($(BR2_PACKAGE_LIBCAMERA),y)
# libcamera-sys generates its bindings with bindgen (libclang), which
# parses libcamera's C++ headers (<array>, <map>, <string>...). An
# external toolchain keeps libstdc++'s headers next to its GCC, outside
# the sysroot, and libclang does not read the config file through which
# Buildroot's clang wrapper finds them. So libclang is given the same
# two options that file holds (see host-clang): the GNU target name and
# the GCC install folder the cross compiler reports. The $$(...) runs
# when the build does, once the toolchain is there.
DASHVAULT_DEPENDENCIES += libcamera host-clang
DASHVAULT_CARGO_BUILD_OPTS += --features libcamera
DASHVAULT_CARGO_INSTALL_OPTS += --features libcamera
DASHVAULT_BINDGEN_CLANG_ARGS = \
	--sysroot=$(STAGING_DIR) \
	--target=$(GNU_TARGET_NAME) \
	--gcc-install-dir=$$($(TARGET_CC) -print-search-dirs | sed -n 's/^install: //p')
DASHVAULT_CARGO_ENV += \
	PKG_CONFIG_ALLOW_CROSS=1 \
	LIBCLANG_PATH=$(HOST_DIR)/lib \
	BINDGEN_EXTRA_CLANG_ARGS="$(DASHVAULT_BINDGEN_CLANG_ARGS)"
endif

# The boot-time scripts and the recorder's service. The recorder is
# started and stopped by its own init script, so a shutdown stops it
# before the filesystems are remounted read-only.
# Every files/S* is an init script; the other files are the helpers they
# run, in /usr/libexec/dashvault.
define DASHVAULT_INSTALL_INIT_SYSV
	$(foreach f,$(wildcard $(DASHVAULT_PKGDIR)/files/S[0-9][0-9]*),
		$(INSTALL) -D -m 0755 $(f) $(TARGET_DIR)/etc/init.d/$(notdir $(f))
	)
	$(foreach f,$(filter-out $(DASHVAULT_PKGDIR)/files/S%,$(wildcard $(DASHVAULT_PKGDIR)/files/*)),
		$(INSTALL) -D -m 0755 $(f) $(TARGET_DIR)/usr/libexec/dashvault/$(notdir $(f))
	)
endef

$(eval $(cargo-package))
