#!/bin/sh
# Install the Debian packages postern needs to build, run and test, if
# they are missing.  Used by `make run` and `make check`; safe to re-run.
#   scripts/deps.sh build    compiler, libraries
#   scripts/deps.sh test     also cmocka, pytest and real clients
set -eu

BUILD="build-essential cmake ninja-build pkg-config libevent-dev libssl-dev libcrypt-dev libc-ares-dev libpam0g-dev libpq-dev libhiredis-dev zlib1g-dev"
# swaks only recommends Net::SSLeay, which its -tls needs; the install
# below takes no recommendations, so it is named here.
TEST="libcmocka-dev clang libclang-rt-14-dev valgrind python3 python3-pytest swaks libnet-ssleay-perl curl openssl msmtp s-nail groff-base man-db dnsmasq-base postfix sasl2-bin libsasl2-modules fetchmail nftables iproute2 postgresql redis-server e2fsprogs"

want="$BUILD"
[ "${1:-build}" = test ] && want="$BUILD $TEST"

missing=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
# As root, the workers drop to this unprivileged system user.
ensure_user() {
	[ "$(id -u)" -eq 0 ] || return 0
	id postern >/dev/null 2>&1 && return 0
	echo "postern: creating the unprivileged system user 'postern'"
	useradd --system --no-create-home --home-dir /nonexistent \
		--shell /usr/sbin/nologin postern
}

if [ -z "$missing" ]; then
	ensure_user
	exit 0
fi

echo "postern: installing missing packages:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
# Postfix is a test peer only: install it unconfigured and unstarted
# (the tests run private instances with `postfix -c DIR`).
echo "postfix postfix/main_mailer_type select No configuration" |
	$SUDO debconf-set-selections
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
ensure_user
