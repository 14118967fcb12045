# casfs top-level Makefile.
#
#   make                  build kmod/casfs.ko for the running kernel
#   make KDIR=/lib/modules/<release>/build
#                         ... or for that headers tree
#   make check            install test dependencies, then run every test
#                         (build for every test kernel, checkpatch,
#                         sparse, dkms, host tests, kernel tests in QEMU)
#   make demo             the end-to-end demo (see README.md)
#   make install          install module source for dkms and the tools

KDIR ?= /lib/modules/$(shell uname -r)/build
PREFIX ?= /usr/local
DESTDIR ?=
VERSION := $(shell cat VERSION)

.PHONY: all module clean check deps modules-all sparse checkpatch \
	tests-bin install install-dkms demo

all: module

module:
	$(MAKE) -C $(KDIR) M=$(CURDIR) modules

# Module for every test kernel, each in build/kbuild/<rel>/.
modules-all:
	tests/build-modules.sh

sparse:
	$(MAKE) -C $(KDIR) M=$(CURDIR) C=2 CF="-D__CHECK_ENDIAN__" modules

checkpatch:
	tests/checkpatch.sh

tests-bin:
	$(MAKE) -C tests/progs O=$(CURDIR)/build/tests
	$(CC) -std=gnu11 -O2 -Wall -Wextra -Werror -o build/tests/fsbench \
		bench/fsbench.c
	$(MAKE) -C helper
	$(MAKE) -C helper/grpc
	$(CC) -std=c11 -O2 -Wall -Wextra -Werror -fPIE -Ihelper -Ihelper/.proto \
		$$(pkg-config --cflags libprotobuf-c) -pie -o build/tests/outputd_rpc \
		bench/outputd_rpc.c helper/grpc/libcasfsgrpc.a \
		$$(find helper/.obj/proto -name '*.o') \
		$$(pkg-config --libs libnghttp2 openssl libprotobuf-c) -pthread

deps:
	tests/install-deps.sh

check: deps
	tests/check.sh

demo: deps
	tests/demo.sh

# Sources only (no objects from an in-tree build), where dkms expects them.
install-dkms:
	install -d $(DESTDIR)/usr/src/casfs-$(VERSION)/kmod/conftest \
		$(DESTDIR)/usr/src/casfs-$(VERSION)/include/uapi/linux
	install -m 0644 Kbuild Makefile VERSION dkms.conf \
		$(DESTDIR)/usr/src/casfs-$(VERSION)/
	install -m 0644 kmod/Kbuild $(filter-out %.mod.c,$(wildcard kmod/*.c)) \
		$(filter-out kmod/casfs_config.h,$(wildcard kmod/*.h)) \
		$(DESTDIR)/usr/src/casfs-$(VERSION)/kmod/
	install -m 0755 kmod/conftest.sh $(DESTDIR)/usr/src/casfs-$(VERSION)/kmod/
	install -m 0644 kmod/conftest/*.c \
		$(DESTDIR)/usr/src/casfs-$(VERSION)/kmod/conftest/
	install -m 0644 include/uapi/linux/casfs.h \
		$(DESTDIR)/usr/src/casfs-$(VERSION)/include/uapi/linux/

# Everything a build host needs: module source for dkms, the daemon and
# the CLI, casfs-outputd, the systemd units (casfs-outputd's is a user unit)
# and an example configuration.
install: install-dkms
	$(MAKE) -C helper install DESTDIR=$(DESTDIR) PREFIX=$(PREFIX)
	install -D -m 0644 packaging/casfs-helper.service \
		$(DESTDIR)/etc/systemd/system/casfs-helper.service
	sed -i 's|/usr/local/sbin/casfs-helper|$(PREFIX)/sbin/casfs-helper|' \
		$(DESTDIR)/etc/systemd/system/casfs-helper.service
	install -D -m 0644 packaging/casfs-outputd.service \
		$(DESTDIR)/etc/systemd/user/casfs-outputd.service
	sed -i 's|/usr/local/bin/casfs-outputd|$(PREFIX)/bin/casfs-outputd|' \
		$(DESTDIR)/etc/systemd/user/casfs-outputd.service
	install -D -m 0644 packaging/helper.conf.example \
		$(DESTDIR)/etc/casfs/helper.conf.example
	install -D -m 0644 packaging/casfs.modules-load \
		$(DESTDIR)/etc/modules-load.d/casfs.conf

clean:
	-$(MAKE) -C $(KDIR) M=$(CURDIR) clean
	rm -rf build
