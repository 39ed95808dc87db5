#!/bin/sh
# `make run`: a working postern on unprivileged loopback ports, with a
# default configuration in a local run directory, in the foreground.
set -eu
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
TOP=$(cd "$(dirname "$0")/.." && pwd)
RUN="$TOP/run"

# As root the workers run as 'postern'; they must reach the spool.
if [ "$(id -u)" -eq 0 ] && ! su -s /bin/sh postern -c "test -x '$TOP'" 2>/dev/null; then
	RUN=/var/tmp/postern-run
	echo "note: $TOP is not reachable by user postern; using $RUN"
fi
mkdir -p "$RUN"
chmod 0755 "$RUN"

if [ ! -f "$RUN/postern.conf" ]; then
	cat >"$RUN/postern.conf" <<CONF
# postern demo configuration (make run).  See postern.conf(5).
hostname    mail.example.test
domains     example.test
spool       $RUN/spool
mailboxes   $RUN/mail
users       $RUN/users
aliases     $RUN/aliases
mynetworks  127.0.0.1/32 ::1

# Unprivileged loopback ports stand in for 25, 587 and 465.
listen smtp        on 127.0.0.1 port 2525
listen submission  on 127.0.0.1 port 2587
listen submissions on 127.0.0.1 port 2465
CONF
	printf '%s\n' 'postmaster: demo' 'root: demo' 'abuse: demo' >"$RUN/aliases"
	# A demo account with a random password, kept next to the config.
	head -c 12 /dev/urandom | base64 | tr -d '/+=' >"$RUN/demo-password"
	chmod 600 "$RUN/demo-password"
	"$BIN" user -c "$RUN/postern.conf" add demo --password-stdin \
	    --address demo@example.test <"$RUN/demo-password" >/dev/null
fi
PASS=$(cat "$RUN/demo-password")

"$BIN" config -c "$RUN/postern.conf" check >/dev/null

cat <<MSG

postern is starting in the foreground (Ctrl-C stops it).
  configuration  $RUN/postern.conf
  spool          $RUN/spool/queue   (one file per accepted message)

Send a message to it from another terminal, for example:
  swaks --server 127.0.0.1:2525 --from you@example.org --to demo@example.test
or
  printf 'Subject: hello\r\n\r\nHello, postern.\r\n' |
    curl -s smtp://127.0.0.1:2525 --mail-from you@example.org \\
         --mail-rcpt demo@example.test --upload-file -
Port 2587 is the submission port (2465 with implicit TLS): MAIL gets
"530 5.7.0 Authentication required" until the client authenticates,
and AUTH is offered only inside TLS.  The demo account:
  swaks --server 127.0.0.1:2587 -tls --auth PLAIN --auth-user demo \\
        --auth-password '$PASS' --from demo@example.test --to someone@example.org

MSG
exec "$BIN" serve -c "$RUN/postern.conf"
