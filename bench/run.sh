#!/bin/bash
# bench/run.sh - postern against Postfix, same load, same run (bench/README.md).
#
# Run by hand, as root (Postfix needs it), from anywhere:
#     bench/run.sh                 the whole table (about 15 minutes)
#     BENCH_QUICK=1 bench/run.sh   fewer messages per run, for a quick look
# Environment: BENCH_DIR (work directory, default /tmp/postern-bench),
# BENCH_PORT (base port, default 24000; the servers use base+25 ...),
# BENCH_RUNS (runs per scenario and server, default 3; the median is shown),
# BENCH_ONLY (a regular expression: run only the scenarios it matches),
# POSTERN_BIN (use this binary instead of building with make),
# BENCH_QUEUE_MANAGERS (queue-managers in postern's configuration; only
# the end-to-end instance delivers; default: postern's own).
#
# Everything listens on 127.0.0.1 only.  Every process this script starts
# is stopped by its PID on exit, failure included.
set -u
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=${BENCH_DIR:-/tmp/postern-bench}
BASE=${BENCH_PORT:-24000}
RUNS=${BENCH_RUNS:-3}
QUICK=${BENCH_QUICK:-0}
ONLY=${BENCH_ONLY:-.}

P_SMTP=$((BASE + 25))		# postern, acceptance (queue-manager off)
P_SMTPS=$((BASE + 465))		# postern, implicit TLS + AUTH
P_E2E=$((BASE + 26))		# postern, second instance, delivery on
F_SMTP=$((BASE + 125))		# Postfix, acceptance (HOLD)
F_SMTPS=$((BASE + 565))		# Postfix, implicit TLS + Cyrus SASL (HOLD)
F_E2E=$((BASE + 126))		# Postfix, virtual delivery to Maildir
SINK=$((BASE + 225))		# smtp-sink

USER_NAME=bench
DOMAIN=bench.test
VDOMAIN=vbench.test

log() { printf '%s\n' "$*" >&2; }
die() { log "bench: $*"; exit 1; }

if [ "$(id -u)" != 0 ]; then
	exec sudo -E "$0" "$@"
fi

# ---------------------------------------------------------------------
# what it needs from Debian

need=()
dpkg -s postfix >/dev/null 2>&1 || need+=(postfix)
dpkg -s sasl2-bin >/dev/null 2>&1 || need+=(sasl2-bin)
dpkg -s libsasl2-modules >/dev/null 2>&1 || need+=(libsasl2-modules)
dpkg -s libssl-dev >/dev/null 2>&1 || need+=(libssl-dev)
command -v cc >/dev/null || need+=(gcc)
if [ ${#need[@]} -gt 0 ]; then
	log "bench: installing ${need[*]}"
	debconf-set-selections <<< "postfix postfix/main_mailer_type select No configuration"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >&2 ||
	    die "apt-get install failed"
fi

if [ -n "${POSTERN_BIN:-}" ]; then
	POSTERN=$POSTERN_BIN		# a build of your own, as is
else
	log "bench: building postern (make)"
	make -C "$ROOT" >&2 || die "make failed"
	POSTERN=$ROOT/build/postern
fi

# ---------------------------------------------------------------------
# cleanup: by PID only

PIDS_TERM=()		# processes started here
PF_ADDED=0
cleanup() {
	set +e
	for p in "${PIDS_TERM[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	if [ -f "$W/postfix/queue/pid/master.pid" ]; then
		pfpid=$(tr -dc 0-9 < "$W/postfix/queue/pid/master.pid")
		[ -n "$pfpid" ] && kill -TERM "$pfpid" 2>/dev/null
	fi
	for p in "${PIDS_TERM[@]}" ${pfpid:-}; do
		for _ in $(seq 100); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$p" 2>/dev/null
	done
	if [ "$PF_ADDED" = 1 ]; then
		# Take our directory back out of the list, leave the others.
		cur=$(postconf -h alternate_config_directories 2>/dev/null)
		new=$(printf '%s\n' "$cur" | tr ', ' '\n\n' | grep -v '^$' |
		    grep -vxF "$W/postfix/conf" | paste -sd, - | sed 's/,/, /g')
		postconf -e "alternate_config_directories = $new"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Stop one process we started, by PID, and forget it.
stop_pid() {
	local p=$1
	kill -TERM "$p" 2>/dev/null
	for _ in $(seq 200); do
		kill -0 "$p" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$p" 2>/dev/null
	wait "$p" 2>/dev/null
	local keep=()
	for q in "${PIDS_TERM[@]}"; do [ "$q" != "$p" ] && keep+=("$q"); done
	PIDS_TERM=("${keep[@]}")
}

# ---------------------------------------------------------------------
# the work directory

if [ -d "$W" ]; then
	# A previous run's instances are gone (trap): start from scratch.
	rm -rf "$W"
fi
mkdir -p "$W"
chmod 755 "$W"
cc -O2 -o "$W/loadgen" "$ROOT/bench/loadgen.c" -lssl -lcrypto -lpthread ||
    die "cannot compile bench/loadgen.c"
LOADGEN=$W/loadgen
PASS=$(head -c 12 /dev/urandom | base64 | tr -dc A-Za-z0-9)
# Sessions and idle connections need descriptors (the hard limit is what
# the container or host allows; raise the soft one to it).
ulimit -n "$(ulimit -Hn)" 2>/dev/null

# ---------------------------------------------------------------------
# postern: two instances

postern_conf() {	# dir smtp-port smtps-port queue-manager
	local d=$1
	mkdir -p "$d"
	chmod 755 "$d"
	cat > "$d/postern.conf" <<EOF
hostname    mail.$DOMAIN
domains     $DOMAIN
spool       $d/spool
mailboxes   $d/mail
users       $d/users
mynetworks  127.0.0.0/8
listen smtp on 127.0.0.1 port $2
${3:+listen submissions on 127.0.0.1 port $3}
workers     2
queue-manager $4
${BENCH_QUEUE_MANAGERS:+queue-managers $BENCH_QUEUE_MANAGERS}
# The benchmark's one user sends thousands of messages an hour.
user-rate-limit 0 0
ip-rate-limit 0
log stderr
EOF
	: > "$d/users"
	chmod 644 "$d/users"
	printf '%s\n' "$PASS" | "$POSTERN" user -c "$d/postern.conf" add \
	    "$USER_NAME" --password-stdin >/dev/null || die "postern user add"
}

wait_port() {		# port
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	die "nothing listens on 127.0.0.1:$1"
}

POSTERN_PID=
start_postern() {	# dir port
	"$POSTERN" serve -c "$1/postern.conf" > "$1/log" 2>&1 &
	POSTERN_PID=$!
	PIDS_TERM+=("$POSTERN_PID")
	wait_port "$2"
}

postern_conf "$W/postern" "$P_SMTP" "$P_SMTPS" off
postern_conf "$W/postern-e2e" "$P_E2E" "" on
start_postern "$W/postern" "$P_SMTP"
PA_PID=$POSTERN_PID
PA_QUEUE=$W/postern/spool/queue

# ---------------------------------------------------------------------
# Postfix: a private instance

PF=$W/postfix
PFC=$PF/conf
mkdir -p "$PFC" "$PF/queue" "$PF/data" "$PFC/sasl" "$PF/mail"
chown postfix:postfix "$PF/data" "$PF/mail"
# The same ECDSA P-256 certificate postern made for itself.
cp "$W/postern/spool/tls/selfsigned-cert.pem" "$PFC/cert.pem"
cp "$W/postern/spool/tls/selfsigned-key.pem" "$PFC/key.pem"
chmod 600 "$PFC/key.pem"
PF_UID=$(id -u postfix)
PF_GID=$(id -g postfix)
cat > "$PFC/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $PF/queue
data_directory = $PF/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = mail.$DOMAIN
mydomain = $DOMAIN
mydestination = $DOMAIN
local_recipient_maps =
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
maillog_file = $PF/maillog
maillog_file_prefixes = $PF
# Acceptance only: every message goes to the hold queue.
smtpd_recipient_restrictions = check_client_access static:HOLD,
    permit_mynetworks, permit_sasl_authenticated, reject
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject
in_flow_delay = 0
default_process_limit = 1100
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_tls_cert_file = $PFC/cert.pem
smtpd_tls_key_file = $PFC/key.pem
smtpd_tls_security_level = may
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
cyrus_sasl_config_path = $PFC/sasl
smtpd_sasl_local_domain = $DOMAIN
# End to end: virtual delivery into one Maildir.
virtual_mailbox_domains = $VDOMAIN
virtual_mailbox_base = $PF/mail
virtual_mailbox_maps = static:$USER_NAME/
virtual_uid_maps = static:$PF_UID
virtual_gid_maps = static:$PF_GID
EOF
cat > "$PFC/master.cf" <<EOF
127.0.0.1:$F_SMTP  inet n - n - 1000 smtpd
127.0.0.1:$F_SMTPS inet n - n - 100 smtpd
  -o smtpd_tls_wrappermode=yes
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
127.0.0.1:$F_E2E   inet n - n - 100 smtpd
  -o smtpd_recipient_restrictions=permit_mynetworks,reject
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
cat > "$PFC/sasl/smtpd.conf" <<EOF
pwcheck_method: auxprop
auxprop_plugin: sasldb
mech_list: PLAIN LOGIN
sasldb_path: $PFC/sasl/sasldb2
EOF
printf '%s' "$PASS" | saslpasswd2 -p -f "$PFC/sasl/sasldb2" -c -u "$DOMAIN" \
    "$USER_NAME" || die "saslpasswd2"
chown postfix:postfix "$PFC/sasl/sasldb2"
chmod 640 "$PFC/sasl/sasldb2"

# The default instance must list ours (postfix -c refuses it otherwise).
[ -f /etc/postfix/main.cf ] || : > /etc/postfix/main.cf
cur=$(postconf -h alternate_config_directories 2>/dev/null)
if ! printf '%s\n' "$cur" | tr ', ' '\n\n' | grep -qxF "$PFC"; then
	postconf -e "alternate_config_directories = ${cur:+$cur, }$PFC"
	PF_ADDED=1
fi
postfix -c "$PFC" check >&2 || die "postfix check"
postfix -c "$PFC" start >&2 || die "postfix start"
wait_port "$F_SMTP"
PF_MASTER=$(tr -dc 0-9 < "$PF/queue/pid/master.pid")
PF_HOLD=$PF/queue/hold

smtp-sink -u postfix -m 2000 "127.0.0.1:$SINK" 4096 &
SINK_PID=$!
PIDS_TERM+=("$SINK_PID")
wait_port "$SINK"

# ---------------------------------------------------------------------
# measuring

median() { sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "nan"}'; }
nowf() { date +%s.%N; }

count_files() { find "$1" -type f 2>/dev/null | wc -l; }
clean_postern() { find "$PA_QUEUE" -type f -delete 2>/dev/null; }
clean_postfix() {
	postsuper -c "$PFC" -d ALL hold >/dev/null 2>&1
	postsuper -c "$PFC" -d ALL >/dev/null 2>&1
}

# Sum of RSS and of PSS (KiB) of pid and all its descendants.
mem_tree() {		# pid -> "rss pss nprocs"
	local pids p rss=0 pss=0 n=0 r s
	pids=$(ps -e -o pid=,ppid= | awk -v root="$1" '
	    { parent[$1] = $2; all[NR] = $1 }
	    END { for (i = 1; i <= NR; i++) { p = all[i]; q = p
	        while (q != "" && q != 0 && q != 1) { if (q == root) { print p; break }
	        q = parent[q] } } }')
	for p in $pids; do
		r=$(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null)
		s=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null)
		[ -n "$r" ] || continue
		rss=$((rss + r)); pss=$((pss + ${s:-0})); n=$((n + 1))
	done
	echo "$rss $pss $n"
}

# One smtp-source run: prints messages/s.  target: postern|postfix|sink
src_run() {		# target port sessions messages length dflag
	local t=$1 port=$2 s=$3 m=$4 l=$5 d=$6 t0 t1 rc got
	t0=$(nowf)
	timeout 600 smtp-source -s "$s" -m "$m" -l "$l" $d -f "$USER_NAME@$DOMAIN" \
	    -t "$USER_NAME@$DOMAIN" "127.0.0.1:$port" 2> "$W/src.err"
	rc=$?
	t1=$(nowf)
	case $t in
	postern) got=$(count_files "$PA_QUEUE"); clean_postern ;;
	postfix) got=$(count_files "$PF_HOLD"); clean_postfix ;;
	sink) got=$m ;;
	esac
	if [ "$rc" != 0 ] || [ "$got" != "$m" ] || [ -s "$W/src.err" ]; then
		echo "$t s=$s m=$m l=$l $d: exit $rc, $got of $m stored: $(head -c 200 "$W/src.err" | tr '\n' ' ')" >> "$W/errors"
	fi
	awk -v m="$m" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f\n", m / (b - a)}'
}

ROWS=()
row() { ROWS+=("$(printf '%-40s %10s %10s %8s %10s %8s' "$@")"); log "${ROWS[-1]}"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}'; }

want() { printf '%s\n' "$1" | grep -Eq -- "$ONLY"; }

# messages per run: sessions -> count
msgs() {		# sessions per-conn(1|100) size(1|100)
	local s=$1 pc=$2 kb=$3 m
	if [ "$pc" = 1 ]; then
		case $s in 1) m=300 ;; 10) m=1500 ;; 100) m=4000 ;; *) m=6000 ;; esac
		[ "$kb" = 100 ] && m=$((m / 2))
	else
		case $s in 1) m=300 ;; 10) m=1000 ;; 100) m=10000 ;; *) m=20000 ;; esac
		[ "$kb" = 100 ] && case $s in 100) m=3000 ;; 1000) m=5000 ;; esac
	fi
	[ "$QUICK" = 1 ] && m=$(( m / 4 > s ? m / 4 : s ))
	echo "$m"
}

log ""
log "bench: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
row "scenario (msg/s unless noted)" postern postfix ratio smtp-sink p/sink

# Memory per idle connection after EHLO, first, while both servers are
# fresh: afterwards postern's heap and Postfix's idle smtpd processes
# from the loads below would hide what the sessions cost.
idle_mem() {		# root-pid port count -> "held rss_kib_per pss_kib_per"
	local before after held out lp
	before=$(mem_tree "$1")
	"$LOADGEN" idle 127.0.0.1 "$2" "$3" 120 > "$W/idle.out" 2>&1 &
	lp=$!
	PIDS_TERM+=("$lp")
	for _ in $(seq 900); do
		grep -q ops= "$W/idle.out" && break
		sleep 0.1
	done
	sleep 1
	after=$(mem_tree "$1")
	held=$(sed -n 's/^ops=\([0-9]*\).*/\1/p' "$W/idle.out")
	stop_pid "$lp"
	echo "$before $after ${held:-0}" | awk '{ if ($7 > 0)
	    printf "%d %.1f %.1f %d %d\n", $7, ($4 - $1) / $7, ($5 - $2) / $7, $3, $6
	    else print "0 - - 0 0" }'
	sleep 2		# let the sessions close
}
if want "idle"; then
	n=10000; [ "$QUICK" = 1 ] && n=2000
	read -r ph prss ppss _ _ <<< "$(idle_mem "$PA_PID" "$P_SMTP" "$n")"
	read -r fh frss fpss _ fprocs <<< "$(idle_mem "$PF_MASTER" "$F_SMTP" "$n")"
	row "idle conn after EHLO: KiB RSS per conn" "$prss" "$frss" \
	    "$(ratio "$frss" "$prss")x" - -
	row "  (same, PSS)" "$ppss" "$fpss" "$(ratio "$fpss" "$ppss")x" - -
	row "  sessions held of $n" "$ph" "$fh" - - -
fi

for kb in 1 100; do
	for pc in 1 100; do
		for s in 1 10 100 1000; do
			name="c=$s ${pc}msg/conn ${kb}KiB"
			want "$name" || continue
			m=$(msgs "$s" "$pc" "$kb")
			d=
			[ "$pc" = 100 ] && d=-d
			[ "$pc" = 100 ] && name="c=$s $((m / s))msg/conn ${kb}KiB"
			rp=() rf=() rs=()
			for _ in $(seq "$RUNS"); do
				rp+=("$(src_run postern "$P_SMTP" "$s" "$m" $((kb * 1024)) "$d")")
				rf+=("$(src_run postfix "$F_SMTP" "$s" "$m" $((kb * 1024)) "$d")")
				rs+=("$(src_run sink "$SINK" "$s" "$m" $((kb * 1024)) "$d")")
			done
			log "  runs: postern ${rp[*]}; postfix ${rf[*]}; sink ${rs[*]}"
			a=$(printf '%s\n' "${rp[@]}" | median)
			b=$(printf '%s\n' "${rf[@]}" | median)
			c=$(printf '%s\n' "${rs[@]}" | median)
			row "$name (m=$m)" "$a" "$b" "$(ratio "$a" "$b")x" "$c" "$(ratio "$a" "$c")"
		done
	done
done

# AUTH PLAIN over implicit TLS, one 1 KiB message per connection.
if want "AUTH"; then
	secs=5; [ "$QUICK" = 1 ] && secs=2
	rp=() rf=()
	for _ in $(seq "$RUNS"); do
		r=$("$LOADGEN" auth 127.0.0.1 "$P_SMTPS" 10 "$secs" "$USER_NAME" "$PASS" \
		    "$USER_NAME@$DOMAIN" "$USER_NAME@$DOMAIN")
		log "  postern auth: $r"
		rp+=("$(sed -n 's/.*rate=\([0-9.]*\).*/\1/p' <<< "$r")"); clean_postern
		r=$("$LOADGEN" auth 127.0.0.1 "$F_SMTPS" 10 "$secs" "$USER_NAME" "$PASS" \
		    "$USER_NAME@$DOMAIN" "$USER_NAME@$DOMAIN")
		log "  postfix auth: $r"
		rf+=("$(sed -n 's/.*rate=\([0-9.]*\).*/\1/p' <<< "$r")"); clean_postfix
	done
	a=$(printf '%s\n' "${rp[@]}" | median); b=$(printf '%s\n' "${rf[@]}" | median)
	row "AUTH PLAIN+1KiB msg, TLS 465, 10 clients" "$a" "$b" "$(ratio "$a" "$b")x" - -
fi

# Full TLS handshakes (no resumption) per second on the implicit-TLS port.
if want "TLS"; then
	secs=5; [ "$QUICK" = 1 ] && secs=2
	rp=() rf=()
	for _ in $(seq "$RUNS"); do
		r=$("$LOADGEN" tls 127.0.0.1 "$P_SMTPS" 10 "$secs"); log "  postern tls: $r"
		rp+=("$(sed -n 's/.*rate=\([0-9.]*\).*/\1/p' <<< "$r")")
		r=$("$LOADGEN" tls 127.0.0.1 "$F_SMTPS" 10 "$secs"); log "  postfix tls: $r"
		rf+=("$(sed -n 's/.*rate=\([0-9.]*\).*/\1/p' <<< "$r")")
	done
	a=$(printf '%s\n' "${rp[@]}" | median); b=$(printf '%s\n' "${rf[@]}" | median)
	row "TLS 1.3 full handshakes/s, 465, 10 thr" "$a" "$b" "$(ratio "$a" "$b")x" - -
fi

# End to end: submission to a Maildir file, 100 sessions, 1 KiB.
e2e_run() {		# port rcpt maildir-new m
	local t0 t1 got
	t0=$(nowf)
	timeout 300 smtp-source -s 100 -m "$4" -l 1024 -f "$USER_NAME@$DOMAIN" \
	    -t "$2" "127.0.0.1:$1" 2> "$W/src.err" ||
	    echo "e2e $1: smtp-source failed: $(head -c 200 "$W/src.err")" >> "$W/errors"
	for _ in $(seq 3000); do
		got=$(ls "$3" 2>/dev/null | wc -l)
		[ "$got" -ge "$4" ] && break
		sleep 0.05
	done
	t1=$(nowf)
	[ "$got" -ge "$4" ] || echo "e2e $1: only $got of $4 delivered" >> "$W/errors"
	rm -rf "$3"/* 2>/dev/null
	awk -v m="$4" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f\n", m / (b - a)}'
}
if want "e2e"; then
	m=2000; [ "$QUICK" = 1 ] && m=500
	start_postern "$W/postern-e2e" "$P_E2E"
	PB_PID=$POSTERN_PID
	rp=() rf=()
	for _ in $(seq "$RUNS"); do
		rp+=("$(e2e_run "$P_E2E" "$USER_NAME@$DOMAIN" "$W/postern-e2e/mail/$USER_NAME/new" "$m")")
		rf+=("$(e2e_run "$F_E2E" "$USER_NAME@$VDOMAIN" "$PF/mail/$USER_NAME/new" "$m")")
	done
	stop_pid "$PB_PID"
	a=$(printf '%s\n' "${rp[@]}" | median); b=$(printf '%s\n' "${rf[@]}" | median)
	row "e2e to Maildir, c=100 1KiB (m=$m)" "$a" "$b" "$(ratio "$a" "$b")x" - -
fi

{
	echo "postern bench, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r), runs=$RUNS (median)"
	printf '%s\n' "${ROWS[@]}"
	if [ -s "$W/errors" ]; then
		echo "errors:"
		sed 's/^/  /' "$W/errors"
	fi
} | tee "$W/results.txt"
