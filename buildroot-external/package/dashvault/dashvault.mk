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
	--exclude /tests --exclude /benches --exclude /data

# Local sources are not vendored by Buildroot: the crates come from
# $(BR_CARGO_HOME), seeded by 'make cargo-fetch' in the repository
# (cargo fetch --locked), so the build itself runs --offline.
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
