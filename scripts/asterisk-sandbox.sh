#!/usr/bin/env bash
# Runs a real Asterisk 22 for agentd's tests and demo, inside a Debian sid
# chroot on the loopback interface: AMI on 127.0.0.1:5038, ARI on
# http://127.0.0.1:8088. The configuration comes from test/asterisk/etc.
#
# Usage: scripts/asterisk-sandbox.sh COMMAND
#   build            build the cached chroot once (debootstrap, about 1 min)
#   start            build if needed, install the config, start Asterisk
#   stop             stop Asterisk and unmount what start mounted
#   restart          stop, then start
#   reboot           stop and start Asterisk again, keeping astdb, the logs
#                    and the installed config (a restart of a production server)
#   ami-off, ami-on  close or reopen AMI: ami-off disables manager.conf, closes
#                    the listener and kicks every AMI session
#   http-off, http-on  close or reopen the HTTP server (ARI): http-off disables
#                    http.conf and closes every established HTTP connection
#   status           print whether Asterisk runs (exit 3 when it does not)
#   cli "COMMAND"    run an Asterisk CLI command and print its output
#   env              print the export lines the Go tests read
#   logs [LINES]     print the end of the full Asterisk log (default 100)
#   queue-log        print the host path of the queue_log file
#
# Environment:
#   AGENTD_SANDBOX_ROOT    chroot directory (default /var/cache/agentd/asterisk-sid)
#   AGENTD_DEBIAN_MIRROR   Debian mirror URL for debootstrap (default: its own)
#   AGENTD_SANDBOX_BOOT_TIMEOUT  seconds to wait for Asterisk to boot (default 60)
#
# Every command except env, logs and queue-log needs root (chroot, mount).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO_ROOT
SANDBOX_ROOT=$(realpath -m "${AGENTD_SANDBOX_ROOT:-/var/cache/agentd/asterisk-sid}")
readonly SANDBOX_ROOT
readonly DEBIAN_MIRROR=${AGENTD_DEBIAN_MIRROR:-}
readonly BOOT_TIMEOUT=${AGENTD_SANDBOX_BOOT_TIMEOUT:-60}
readonly CONFIG_SOURCE=$REPO_ROOT/test/asterisk/etc
readonly LOCK_FILE=$SANDBOX_ROOT.lock
readonly ASTERISK=/usr/sbin/asterisk
readonly PID_FILE=$SANDBOX_ROOT/run/asterisk/asterisk.pid
readonly LOG_DIR=$SANDBOX_ROOT/var/log/asterisk
readonly STARTUP_LOG=$LOG_DIR/startup.log

# Addresses and credentials of test/asterisk/etc/manager.conf, http.conf and
# ari.conf. Change them together.
readonly AMI_ADDR=127.0.0.1:5038
readonly AMI_USER=agentd
readonly AMI_SECRET=agentd-ami-secret
readonly AMI_BENCH_USER=bench
readonly AMI_BENCH_SECRET=bench-ami-secret
readonly ARI_URL=http://127.0.0.1:8088
readonly ARI_USER=agentd
readonly ARI_PASSWORD=agentd-ari-secret

log() {
	echo "asterisk-sandbox: $*" >&2
}

die() {
	log "error: $*"
	exit 1
}

require_root() {
	[[ $(id -u) -eq 0 ]] || die "'$1' needs root for chroot and mount; run: sudo $0 $1"
}

# take_lock serializes build, start and stop across processes. Asterisk must
# not inherit the lock descriptor, or the lock would stay held while it runs:
# launch_asterisk closes it.
take_lock() {
	mkdir -p "$(dirname "$LOCK_FILE")"
	exec 9>"$LOCK_FILE"
	flock -w 900 9 || die "timed out after 900 s waiting for $LOCK_FILE; another asterisk-sandbox.sh is still running"
}

in_chroot() {
	env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 chroot "$SANDBOX_ROOT" "$@"
}

# --- build ---------------------------------------------------------------

is_built() {
	[[ -x $SANDBOX_ROOT$ASTERISK ]]
}

install_debootstrap() {
	command -v debootstrap >/dev/null && return
	log "installing debootstrap with apt-get"
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap
}

# unmount_below unmounts every mount point under $1, deepest first.
# debootstrap mounts /proc and /sys in its target and may leave them mounted
# when it fails.
unmount_below() {
	local dir mounts mount_point
	dir=$(realpath "$1")
	mounts=$(awk -v prefix="$dir/" 'index($2, prefix) == 1 { print $2 }' /proc/self/mounts | sort -r)
	for mount_point in $mounts; do
		umount "$mount_point" || umount -l "$mount_point"
	done
}

# remove_build_dir deletes an unfinished build directory. --one-file-system
# keeps rm out of anything that is still mounted below it.
remove_build_dir() {
	[[ -d $1 ]] || return 0
	unmount_below "$1"
	rm -rf --one-file-system "$1"
}

# remove_stale_builds deletes the directories of builds that were killed
# before their cleanup ran. The caller holds the lock, so none is in use.
remove_stale_builds() {
	local dir
	for dir in "$SANDBOX_ROOT".build.*; do
		[[ -d $dir ]] || continue
		log "removing the unfinished build $dir"
		remove_build_dir "$dir"
	done
}

build() {
	if is_built; then
		log "reusing the chroot in $SANDBOX_ROOT"
		return
	fi
	[[ -e $SANDBOX_ROOT ]] &&
		die "$SANDBOX_ROOT exists but has no $ASTERISK; delete it or set AGENTD_SANDBOX_ROOT to another directory"
	install_debootstrap
	remove_stale_builds

	# Build in a sibling directory and rename it at the end, so an
	# interrupted build is never taken for a finished chroot. The EXIT trap
	# removes the directory when the build fails or is interrupted.
	local target
	target=$(mktemp -d "$SANDBOX_ROOT.build.XXXXXX")
	# shellcheck disable=SC2064 # expand $target now, the local is gone at exit
	trap "remove_build_dir '$target'" EXIT
	# mktemp creates the directory with mode 0700. It becomes the chroot's
	# /, which the asterisk user must be able to enter.
	chmod 0755 "$target"
	log "building the Debian sid chroot in $target (about a minute)"
	# shellcheck disable=SC2086 # an empty mirror must expand to no argument
	if ! debootstrap --variant=minbase --include=asterisk,asterisk-modules sid "$target" $DEBIAN_MIRROR; then
		tail -n 30 "$target/debootstrap/debootstrap.log" >&2 || true
		die "debootstrap failed (log above); check the network access to the Debian mirror or set AGENTD_DEBIAN_MIRROR"
	fi
	unmount_below "$target"
	[[ -x $target$ASTERISK ]] || die "debootstrap finished but $target$ASTERISK is missing"

	mv "$target" "$SANDBOX_ROOT"
	trap - EXIT
	log "chroot ready in $SANDBOX_ROOT"
}

# --- start ---------------------------------------------------------------

# asterisk_pid prints the PID of the sandbox's Asterisk and succeeds only when
# that process runs inside this chroot, so a stale pid file whose PID was
# reused by another process is ignored.
asterisk_pid() {
	[[ -r $PID_FILE ]] || return 1
	local pid root
	pid=$(<"$PID_FILE")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	root=$(readlink "/proc/$pid/root" 2>/dev/null) || return 1
	[[ $root == "$(realpath "$SANDBOX_ROOT")" ]] || return 1
	echo "$pid"
}

# install_config replaces the package's /etc/asterisk with the project's
# files only. The package's samples stay in /etc/asterisk.dist for reference.
install_config() {
	local etc=$SANDBOX_ROOT/etc/asterisk
	[[ -d $CONFIG_SOURCE ]] || die "config directory $CONFIG_SOURCE is missing"
	if [[ -d $etc && ! -e $SANDBOX_ROOT/etc/asterisk.dist ]]; then
		mv "$etc" "$SANDBOX_ROOT/etc/asterisk.dist"
	fi
	rm -rf "$etc"
	mkdir -p "$etc"
	cp "$CONFIG_SOURCE"/*.conf "$etc/"
	chmod 0755 "$etc"
	chmod 0644 "$etc"/*.conf
}

# reset_state deletes astdb (persistent queue members, Stasis: device states),
# every log and the pid file and control socket of a run that did not stop
# cleanly, so each start begins from the same state.
reset_state() {
	rm -f "$SANDBOX_ROOT"/var/lib/asterisk/astdb.sqlite3*
	rm -rf "$LOG_DIR" "$SANDBOX_ROOT"/run/asterisk
	rm -rf "$SANDBOX_ROOT"/var/spool/asterisk/outgoing
	mkdir -p "$LOG_DIR" "$SANDBOX_ROOT"/var/lib/asterisk "$SANDBOX_ROOT"/var/spool/asterisk \
		"$SANDBOX_ROOT"/var/cache/asterisk "$SANDBOX_ROOT"/run/asterisk
	in_chroot chown -R asterisk:asterisk /var/log/asterisk /var/lib/asterisk /var/spool/asterisk \
		/var/cache/asterisk /run/asterisk
}

# mount_proc mounts /proc, the only host file system Asterisk 22 needs: it
# reads /proc for its CPU count and memory and /proc/self/fd.
mount_proc() {
	mountpoint -q "$SANDBOX_ROOT/proc" || mount -t proc proc "$SANDBOX_ROOT/proc"
}

# check_ports fails when something already listens on the sandbox's ports:
# Asterisk would boot anyway, log a bind error, and the tests would reach the
# other listener.
check_ports() {
	local port
	for port in "${AMI_ADDR##*:}" "${ARI_URL##*:}"; do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			die "127.0.0.1:$port is already in use; find the listener with: ss -ltnp 'sport = :$port'"
		fi
	done
}

# launch_asterisk starts Asterisk as the asterisk user. It forks into the
# background and writes its PID to /run/asterisk/asterisk.pid. With -U root
# Asterisk 22 drops CAP_DAC_OVERRIDE and cannot read its own config.
# What Asterisk prints before it forks, such as a failed chdir or pid file,
# goes to $STARTUP_LOG; later messages go to the full log.
launch_asterisk() {
	in_chroot "$ASTERISK" -U asterisk -G asterisk 9>&- </dev/null >"$STARTUP_LOG" 2>&1 ||
		boot_failed "asterisk exited at once"
}

# boot_failed prints the output of the launch and the end of the full log,
# then exits with $1 as the reason.
boot_failed() {
	local file
	for file in "$STARTUP_LOG" "$LOG_DIR/full"; do
		if [[ -s $file ]]; then
			echo "--- end of $file" >&2
			tail -n 40 "$file" >&2
		else
			echo "--- $file is empty or missing" >&2
		fi
	done
	die "$1 (logs above); check the config in $CONFIG_SOURCE and the chroot in $SANDBOX_ROOT"
}

# chroot_has_process succeeds when any process runs with the sandbox as its
# root directory. It distinguishes a booting Asterisk from one that exited
# before it wrote its pid file.
chroot_has_process() {
	local root proc_dir
	root=$(realpath "$SANDBOX_ROOT")
	for proc_dir in /proc/[0-9]*; do
		[[ $(readlink "$proc_dir/root" 2>/dev/null) == "$root" ]] && return 0
	done
	return 1
}

# wait_fully_booted polls "core waitfullybooted", which blocks until the boot
# is complete but fails at once while the control socket does not exist yet.
# The PID check catches an Asterisk that exited during the boot: a remote
# console that connected before the exit also returns success.
wait_fully_booted() {
	local deadline=$((SECONDS + BOOT_TIMEOUT))
	while ((SECONDS < deadline)); do
		if in_chroot timeout 5 "$ASTERISK" -rx "core waitfullybooted" >/dev/null 2>&1 &&
			asterisk_pid >/dev/null; then
			return
		fi
		if ! chroot_has_process; then
			boot_failed "Asterisk exited during boot"
		fi
		sleep 0.2
	done
	boot_failed "Asterisk did not finish booting within $BOOT_TIMEOUT s (AGENTD_SANDBOX_BOOT_TIMEOUT)"
}

print_locations() {
	cat <<EOF
Asterisk sandbox running (pid $(asterisk_pid)) in $SANDBOX_ROOT
  AMI        $AMI_ADDR (users $AMI_USER, $AMI_BENCH_USER)
  ARI        $ARI_URL/ari (user $ARI_USER)
  full log   $LOG_DIR/full
  queue_log  $LOG_DIR/queue_log
  test env   eval "\$($0 env)"
EOF
}

start() {
	build
	if asterisk_pid >/dev/null; then
		log "already running; run '$0 restart' to apply changes in $CONFIG_SOURCE"
		print_locations
		return
	fi
	check_ports
	install_config
	reset_state
	mount_proc

	launch_asterisk
	wait_fully_booted
	print_locations
}

# --- stop ----------------------------------------------------------------

# wait_exit waits up to $2 seconds for process $1 to end.
wait_exit() {
	local deadline=$((SECONDS + $2))
	while kill -0 "$1" 2>/dev/null; do
		((SECONDS < deadline)) || return 1
		sleep 0.1
	done
}

stop() {
	local pid
	if pid=$(asterisk_pid); then
		log "stopping Asterisk (pid $pid)"
		in_chroot timeout 10 "$ASTERISK" -rx "core stop now" >/dev/null 2>&1 || true
		if ! wait_exit "$pid" 15; then
			log "Asterisk did not stop after 'core stop now'; sending SIGTERM to pid $pid"
			kill -TERM "$pid" 2>/dev/null || true
			if ! wait_exit "$pid" 5; then
				log "sending SIGKILL to pid $pid"
				kill -KILL "$pid" 2>/dev/null || true
				wait_exit "$pid" 5 || die "pid $pid survived SIGKILL"
			fi
		fi
	else
		log "not running"
	fi
	if [[ -d $SANDBOX_ROOT/proc ]] && mountpoint -q "$SANDBOX_ROOT/proc"; then
		umount "$SANDBOX_ROOT/proc"
	fi
}

# --- faults --------------------------------------------------------------
# The commands below break the running sandbox for tests of agentd's fault
# handling. They change the config installed in the chroot, not the one in
# test/asterisk/etc, so the next start undoes them.

# reboot stops Asterisk and starts it again without install_config and
# reset_state, so persistent queue members, Stasis: device states and
# queue_log survive, as on a production server.
reboot() {
	asterisk_pid >/dev/null || die "Asterisk is not running; start it with: $0 start"
	stop
	mount_proc
	launch_asterisk
	wait_fully_booted
	log "Asterisk restarted (pid $(asterisk_pid)), astdb and logs kept"
}

# set_general_enabled sets "enabled" in the [general] section of the
# installed config file $1 to $2 (yes or no).
set_general_enabled() {
	local file=$SANDBOX_ROOT/etc/asterisk/$1
	[[ -f $file ]] || die "$file is missing; start the sandbox first"
	sed -i "/^\[general\]/,/^\[/ s/^enabled[[:space:]]*=.*/enabled = $2/" "$file"
}

# installed_port prints the value of key $2 in the installed config file $1.
installed_port() {
	sed -n "s/^$2[[:space:]]*=[[:space:]]*\([0-9]*\).*/\1/p" "$SANDBOX_ROOT/etc/asterisk/$1" | head -n 1
}

# manager_sessions prints the file descriptor of every AMI session, the
# FileDes column of "manager show connected" in Asterisk 22.
manager_sessions() {
	in_chroot "$ASTERISK" -rx "manager show connected" | awk 'NF >= 8 && $5 ~ /^[0-9]+$/ { print $5 }'
}

# ami_off closes AMI. "manager reload" with enabled = no closes the
# listener but leaves the logged-in sessions open (Asterisk 22.10), so each
# is kicked as well.
ami_off() {
	asterisk_pid >/dev/null || die "Asterisk is not running; start it with: $0 start"
	set_general_enabled manager.conf no
	in_chroot "$ASTERISK" -rx "manager reload" >/dev/null
	local fd
	for fd in $(manager_sessions); do
		in_chroot "$ASTERISK" -rx "manager kick session $fd" >/dev/null
	done
	log "AMI closed"
}

ami_on() {
	asterisk_pid >/dev/null || die "Asterisk is not running; start it with: $0 start"
	set_general_enabled manager.conf yes
	reopen manager.conf port "manager reload"
	log "AMI open on port $(installed_port manager.conf port)"
}

# reopen runs the reload command $3 until the port in key $2 of the
# installed config file $1 accepts connections. Once in a test run, after
# "manager reload" the AMI port stayed closed for over a minute, so the
# reload is repeated, with the file touched, for up to 10 s.
reopen() {
	local port attempt i
	port=$(installed_port "$1" "$2")
	[[ -n $port ]] || die "no $2 in $SANDBOX_ROOT/etc/asterisk/$1"
	for attempt in 1 2 3 4 5; do
		touch "$SANDBOX_ROOT/etc/asterisk/$1"
		in_chroot "$ASTERISK" -rx "$3" >/dev/null
		for i in {1..20}; do
			if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
				[[ $attempt -eq 1 ]] || log "port $port open after $attempt reloads"
				return 0
			fi
			sleep 0.1
		done
	done
	die "127.0.0.1:$port still closed after '$3' 5 times; see the log: $0 logs"
}

# http_off closes the HTTP server. "module reload http" with enabled = no
# closes the listener but not the established connections, such as ARI
# websockets (Asterisk 22.10), and Asterisk has no command to close them, so
# ss kills the server side of each connection to the HTTP port.
http_off() {
	asterisk_pid >/dev/null || die "Asterisk is not running; start it with: $0 start"
	command -v ss >/dev/null || die "http-off needs ss (package iproute2)"
	local port
	port=$(installed_port http.conf bindport)
	[[ -n $port ]] || die "no bindport in $SANDBOX_ROOT/etc/asterisk/http.conf"
	set_general_enabled http.conf no
	in_chroot "$ASTERISK" -rx "module reload http" >/dev/null
	ss -K -tn state established "( sport = :$port )" >/dev/null
	log "HTTP closed on port $port"
}

http_on() {
	asterisk_pid >/dev/null || die "Asterisk is not running; start it with: $0 start"
	set_general_enabled http.conf yes
	reopen http.conf bindport "module reload http"
	log "HTTP open on port $(installed_port http.conf bindport)"
}

# --- other commands --------------------------------------------------------

status() {
	local pid
	if pid=$(asterisk_pid); then
		print_locations
		in_chroot "$ASTERISK" -rx "core show uptime"
		return 0
	fi
	echo "Asterisk sandbox not running (chroot $SANDBOX_ROOT)"
	return 3
}

cli() {
	[[ $# -gt 0 ]] || die "cli needs a command, for example: $0 cli \"queue show sales\""
	asterisk_pid >/dev/null || die "Asterisk is not running; start it with: $0 start"
	in_chroot "$ASTERISK" -rx "$*"
}

print_env() {
	local name value
	while read -r name value; do
		printf 'export %s=%q\n' "$name" "$value"
	done <<EOF
AGENTD_TEST_AMI_ADDR $AMI_ADDR
AGENTD_TEST_AMI_USER $AMI_USER
AGENTD_TEST_AMI_SECRET $AMI_SECRET
AGENTD_TEST_AMI_BENCH_USER $AMI_BENCH_USER
AGENTD_TEST_AMI_BENCH_SECRET $AMI_BENCH_SECRET
AGENTD_TEST_ARI_URL $ARI_URL
AGENTD_TEST_ARI_USER $ARI_USER
AGENTD_TEST_ARI_PASSWORD $ARI_PASSWORD
AGENTD_TEST_SANDBOX_ROOT $SANDBOX_ROOT
EOF
}

logs() {
	local lines=${1:-100}
	[[ -f $LOG_DIR/full ]] || die "no log at $LOG_DIR/full; start the sandbox first"
	tail -n "$lines" "$LOG_DIR/full"
}

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

main() {
	local command=${1:-}
	[[ $# -gt 0 ]] && shift
	case $command in
	build | start | stop | restart | reboot | ami-off | ami-on | http-off | http-on)
		require_root "$command"
		take_lock
		case $command in
		restart) stop && start ;;
		*) "${command//-/_}" ;;
		esac
		;;
	status | cli)
		require_root "$command"
		"$command" "$@"
		;;
	logs) logs "$@" ;;
	env) print_env ;;
	queue-log) echo "$LOG_DIR/queue_log" ;;
	-h | --help | help) usage ;;
	'')
		usage >&2
		die "missing command"
		;;
	*)
		usage >&2
		die "unknown command '$command'"
		;;
	esac
}

main "$@"
