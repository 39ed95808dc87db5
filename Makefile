# postern - the README's two commands, and the build behind them.
#
#   make          build build/postern (release, warnings are errors)
#   make run      install what is missing, build, run a demo server on
#                 loopback ports in ./run (foreground; Ctrl-C stops it)
#   make check    install what is missing, build with ASan/UBSan, run the
#                 unit tests and the black-box tests against that build
#   make install  install the binary (PREFIX=/usr/local)

PREFIX	?= /usr/local
BUILD	:= build
ASAN	:= build-asan
CMAKE_GEN := -G Ninja

.PHONY: all deps deps-test run check unit blackbox install clean

all: deps
	cmake -S . -B $(BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DPOSTERN_WERROR=ON -DPOSTERN_TESTS=OFF >/dev/null
	cmake --build $(BUILD)

deps:
	@scripts/deps.sh build

deps-test:
	@scripts/deps.sh test

run: all
	@scripts/run-demo.sh $(BUILD)/postern

$(ASAN)/postern: deps-test FORCE
	cmake -S . -B $(ASAN) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug \
		-DPOSTERN_WERROR=ON -DPOSTERN_SANITIZE=ON -DPOSTERN_TESTS=ON >/dev/null
	cmake --build $(ASAN)

FORCE:

unit: $(ASAN)/postern
	cd $(ASAN) && ctest --output-on-failure

blackbox: $(ASAN)/postern
	POSTERN_BIN=$(CURDIR)/$(ASAN)/postern /usr/bin/python3 -m pytest -q tests/blackbox

check: all unit blackbox

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin
	install -m 0755 $(BUILD)/postern $(DESTDIR)$(PREFIX)/sbin/postern

clean:
	rm -rf $(BUILD) $(ASAN) run
