# Builds and packages. Needs only Go (go.mod's toolchain) and GNU make;
# nfpm, which writes the .deb files, is a tool dependency in go.mod.
#
#   make build      kioskd, kioskctl and hubd for this machine, into bin/
#   make build-all  kioskd and kioskctl for linux/amd64, linux/arm64 and
#                   linux/arm (ARMv7), static and stripped, into dist/linux-<arch>/
#   make deb        the kioskedge .deb for each of the three, into dist/
#                   (packaging/README.md says what is in it)
#   make test       ./scripts/test.sh
#   make clean      remove bin/ and dist/
#
# VERSION defaults to the latest v* tag (v1.2.0 → 1.2.0; 3 commits after it →
# 1.2.0+3.g<hash>), or 0.0.0-dev.<commits>+g<hash> without tags; set it to
# override (make deb VERSION=1.3.0). It must be a semantic version: it is
# the .deb's version and what `kioskd -version` prints.

GO ?= go
ARCHES := amd64 arm64 armv7
BOX_CMDS := kioskd kioskctl

ifeq ($(origin VERSION),undefined)
VERSION := $(shell \
	if v=$$(git describe --tags --match 'v[0-9]*' 2>/dev/null); then \
		echo "$$v" | sed -E 's/^v//; s/-([0-9]+)-g([0-9a-f]+)$$/+\1.g\2/'; \
	else \
		echo "0.0.0-dev.$$(git rev-list --count HEAD 2>/dev/null || echo 0)+g$$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"; \
	fi)
endif

# Static (no cgo), reproducible paths, no symbol table or DWARF; the version
# is stamped into main.version. VCS stamping is off: the version says which
# build it is, and git may refuse a checkout owned by another user.
BUILD_FLAGS := -trimpath -buildvcs=false -ldflags '-s -w -X main.version=$(VERSION)'

# armv7 is GOARCH=arm GOARM=7 for Go and arm7 (Debian armhf) for nfpm.
goarch = $(if $(filter armv7,$1),arm,$1)
goarm = $(if $(filter armv7,$1),7)
nfpmarch = $(if $(filter armv7,$1),arm7,$1)

.PHONY: build build-all deb test clean $(ARCHES:%=build-%) $(ARCHES:%=deb-%)

build:
	CGO_ENABLED=0 $(GO) build $(BUILD_FLAGS) -o bin/ ./cmd/kioskd ./cmd/kioskctl ./cmd/hubd

build-all: $(ARCHES:%=build-%)

$(ARCHES:%=build-%): build-%:
	CGO_ENABLED=0 GOOS=linux GOARCH=$(call goarch,$*) GOARM=$(call goarm,$*) \
		$(GO) build $(BUILD_FLAGS) -o dist/linux-$*/ $(BOX_CMDS:%=./cmd/%)

deb: $(ARCHES:%=deb-%)

$(ARCHES:%=deb-%): deb-%: build-%
	VERSION='$(VERSION)' NFPM_ARCH=$(call nfpmarch,$*) BIN_DIR=dist/linux-$* \
		$(GO) tool nfpm package --config packaging/nfpm.yaml --packager deb --target dist/

test:
	./scripts/test.sh

clean:
	rm -rf bin/ dist/
