# Thin wrapper over CMake presets. `make run` and `make test` install what is missing first.
PRESET ?= dev
BUILD  := build/$(PRESET)
JOBS   ?= $(shell nproc)

.PHONY: all deps build run test asan tsan release lint bench bench-quick install check-install docs clean

all: build

deps:
	@bash scripts/deps.sh

$(BUILD)/build.ninja:
	cmake --preset $(PRESET)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

# The main program: eleos-kvs when built, else the emulator demo.
run: build
	@if [ -x $(BUILD)/apps/kvs/eleos-kvs ]; then \
	  exec $(BUILD)/apps/kvs/eleos-kvs $$([ "$$(id -u)" = 0 ] && echo -u root) $(ARGS); \
	else exec $(BUILD)/apps/demo/eleos-demo $(ARGS); fi

test: build
	@bash tests/run.sh $(BUILD)

asan:
	$(MAKE) test PRESET=asan

tsan:
	$(MAKE) build PRESET=tsan
	@bash tests/run.sh build/tsan -L concurrent

release:
	$(MAKE) build PRESET=release

# The whole evaluation (about 20 minutes; `make bench ARGS=--quick` for a few): writes
# bench/out/*.csv, docs/results.md and docs/plots/*.png.
bench:
	$(MAKE) build PRESET=release
	@bash bench/run.sh build/release $(ARGS)

bench-quick:
	$(MAKE) bench ARGS=--quick

# The reference: section-3 man pages from the public headers' comments, in $(BUILD)/man/man3
# (`man -l $(BUILD)/man/man3/eleos_suvm_alloc.3`); installed with the library.
docs: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) --target docs

# Installs libeleos (headers, libeleos.so.0 and libeleos.a, eleos.pc, the CMake package) under
# PREFIX, from a release build of the library alone. DESTDIR is honoured (packaging).
PREFIX ?= /usr/local
install: deps
	cmake -S . -B build/lib -G Ninja -DCMAKE_BUILD_TYPE=Release -DELEOS_BUILD_TESTS=OFF \
	  -DELEOS_BUILD_APPS=OFF -DELEOS_BUILD_TOOLS=OFF -DELEOS_BUILD_BENCH=OFF
	cmake --build build/lib -j $(JOBS)
	cmake --install build/lib --prefix $(PREFIX)

# Installs into a temporary prefix and builds and runs examples/ against it (CI stage).
check-install: deps
	@bash scripts/check_install.sh

lint: build
	@bash scripts/check_enclave_syscalls.sh $(BUILD)

clean:
	rm -rf build
