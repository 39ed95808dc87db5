# postern - the README's two commands, and the build behind them.
#
#   make          build build/postern (release, warnings are errors)
#   make run      install what is missing, build, run a demo server on
#                 loopback ports in ./run (foreground; Ctrl-C stops it)
#   make check    install what is missing, build with ASan/UBSan, run the
#                 unit tests and the black-box tests against that build,
#                 each fuzz target for a few seconds, and a part of the
#                 black-box tests under valgrind
#   make fuzz     run each fuzz target for FUZZ_SECONDS (default 300)
#   make install  install the binary, sendmail/mailq/newaliases links, man
#                 pages, example configuration, systemd unit
#                 (PREFIX=/usr/local, DESTDIR for staging)

PREFIX	?= /usr/local
BUILD	:= build
ASAN	:= build-asan
FUZZ	:= build-fuzz
VALGRIND := build-valgrind
# libFuzzer time per target: `make fuzz` (long) and `make check` (short).
FUZZ_SECONDS	   ?= 300
FUZZ_CHECK_SECONDS ?= 4
CMAKE_GEN := -G Ninja

.PHONY: all deps deps-test run check unit blackbox fuzz fuzz-build fuzz-check memcheck install install-files clean

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
	POSTERN_BIN=$(CURDIR)/$(ASAN)/postern /usr/bin/python3 -m pytest -q -rs tests/blackbox

# The OP25B lab alone (it also runs inside blackbox); needs root.
lab: $(ASAN)/postern
	POSTERN_BIN=$(CURDIR)/$(ASAN)/postern /usr/bin/python3 -m pytest -q -rs tests/blackbox/test_lab.py

check: all unit blackbox fuzz-check memcheck

# Fuzzing (tests/fuzz/): clang, libFuzzer, ASan and UBSan; the library is
# compiled with -fsanitize=fuzzer-no-link (CMake option POSTERN_FUZZ).
fuzz-build: deps-test
	CC=clang cmake -S . -B $(FUZZ) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug \
		-DCMAKE_C_FLAGS=-O1 -DPOSTERN_FUZZ=ON -DPOSTERN_TESTS=OFF >/dev/null
	cmake --build $(FUZZ)

fuzz: fuzz-build
	tests/fuzz/run.sh $(FUZZ) $(FUZZ_SECONDS)

fuzz-check: fuzz-build
	tests/fuzz/run.sh $(FUZZ) $(FUZZ_CHECK_SECONDS)

# A representative part of the black-box suite under valgrind memcheck,
# against a build without sanitizers (tests/blackbox/test_memcheck.py).
$(VALGRIND)/postern: deps-test FORCE
	cmake -S . -B $(VALGRIND) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug \
		-DPOSTERN_WERROR=ON -DPOSTERN_TESTS=OFF >/dev/null
	cmake --build $(VALGRIND) --target postern

memcheck: $(VALGRIND)/postern
	POSTERN_VALGRIND=1 POSTERN_BIN=$(CURDIR)/$(VALGRIND)/postern \
		/usr/bin/python3 -m pytest -q -rs -m memcheck tests/blackbox

# The binary, its MSP names, the manual pages, the example configuration
# and the systemd unit.  SYSCONFDIR/postern.conf is installed only when
# absent, never over an administrator's file.
SYSCONFDIR	?= /etc/postern
UNITDIR		?= /lib/systemd/system
MANDIR		?= $(PREFIX)/share/man
DOCDIR		?= $(PREFIX)/share/doc/postern

# (install-files alone installs INSTALL_BIN without building: the tests
# use it on the ASan build.)
INSTALL_BIN	?= $(BUILD)/postern

install: all install-files

install-files:
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(DOCDIR) \
		$(DESTDIR)$(SYSCONFDIR) $(DESTDIR)$(UNITDIR)
	install -m 0755 $(INSTALL_BIN) $(DESTDIR)$(PREFIX)/sbin/postern
	for n in sendmail mailq newaliases; do \
		ln -sf postern $(DESTDIR)$(PREFIX)/sbin/$$n; done
	install -m 0644 docs/postern.8 $(DESTDIR)$(MANDIR)/man8/postern.8
	install -m 0644 docs/postern.conf.5 $(DESTDIR)$(MANDIR)/man5/postern.conf.5
	install -m 0644 etc/postern.conf docs/aliases.example README.md \
		$(DESTDIR)$(DOCDIR)/
	[ -e $(DESTDIR)$(SYSCONFDIR)/postern.conf ] || \
		install -m 0644 etc/postern.conf $(DESTDIR)$(SYSCONFDIR)/postern.conf
	sed 's|/usr/sbin/postern|$(PREFIX)/sbin/postern|g' etc/postern.service \
		>$(DESTDIR)$(UNITDIR)/postern.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/postern.service

clean:
	rm -rf $(BUILD) $(ASAN) $(FUZZ) $(VALGRIND) run
