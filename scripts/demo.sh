#!/usr/bin/env bash
# Runs the agentd demo: a real Asterisk 22 in the sandbox chroot, agentd
# with the example configuration and its embedded NATS server, all on
# 127.0.0.1. Prints curl commands to try.
#
# Usage: scripts/demo.sh start|stop|status
#
# State lives in .demo/ of the repository: agentd's data directory, its
# log (.demo/agentd.log) and its pid file.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO_ROOT
readonly DEMO_DIR=$REPO_ROOT/.demo
readonly PID_FILE=$DEMO_DIR/agentd.pid
readonly LOG_FILE=$DEMO_DIR/agentd.log
readonly BINARY=$REPO_ROOT/bin/agentd
readonly SANDBOX=$REPO_ROOT/scripts/asterisk-sandbox.sh
readonly API=http://127.0.0.1:8080

log() {
	echo "demo: $*" >&2
}

agentd_running() {
	[[ -f $PID_FILE ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null
}

start_agentd() {
	mkdir -p "$DEMO_DIR/data"
	log "starting agentd (log: $LOG_FILE)"
	AGENTD_DATA_DIR=$DEMO_DIR/data \
		AGENTD_DIRECTORY=$REPO_ROOT/configs/directory.yaml \
		"$BINARY" run -config "$REPO_ROOT/configs/agentd.yaml" >>"$LOG_FILE" 2>&1 &
	echo $! >"$PID_FILE"
}

# wait_ready polls /readyz until Asterisk and NATS are connected.
wait_ready() {
	local i
	for i in $(seq 1 100); do
		if curl -fsS "$API/readyz" >/dev/null 2>&1; then
			return 0
		fi
		if ! agentd_running; then
			log "agentd exited; the end of its log:"
			tail -n 30 "$LOG_FILE" >&2
			return 1
		fi
		sleep 0.2
	done
	log "agentd is not ready after 20 s; /readyz says:"
	curl -sS "$API/readyz" >&2 || true
	return 1
}

print_commands() {
	cat <<TXT

agentd is running on $API with agent 1001 (password ana-secret) in
queues sales, support and demo. Try, one at a time:

  curl -s -u 1001:ana-secret -X POST $API/api/v1/asterisk_login/
  $SANDBOX cli "queue show sales"

  curl -s -u 1001:ana-secret -X POST -d pause_id=2 $API/api/v1/asterisk_pause/
  $SANDBOX cli "queue show sales"

  curl -s -u 1001:ana-secret -X POST -H 'Content-Type: application/json' -d '{"pause_id":2}' $API/api/v1/asterisk_unpause/
  $SANDBOX cli "queue show sales"

  curl -s -u 1001:ana-secret -X POST $API/api/v1/asterisk_logout/
  $SANDBOX cli "queue show sales"

Errors in Spanish:
  curl -s -u 1001:ana-secret -H 'Accept-Language: es' -X POST -d pause_id=99 $API/api/v1/asterisk_pause/

Events and sessions (embedded NATS on 127.0.0.1:4222):
  $BINARY events -config $REPO_ROOT/configs/agentd.yaml -all

queue_log:   tail -f \$($SANDBOX queue-log)
agentd log:  tail -f $LOG_FILE
Stop all:    make demo-stop
TXT
}

cmd_start() {
	"$SANDBOX" start
	if agentd_running; then
		log "agentd already runs (pid $(cat "$PID_FILE")); restarting it"
		cmd_stop_agentd
	fi
	start_agentd
	wait_ready
	print_commands
}

cmd_stop_agentd() {
	if ! agentd_running; then
		rm -f "$PID_FILE"
		return 0
	fi
	local pid
	pid=$(cat "$PID_FILE")
	kill -TERM "$pid"
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "agentd (pid $pid) did not stop in 10 s; killing it"
		kill -KILL "$pid"
	fi
	rm -f "$PID_FILE"
	log "agentd stopped"
}

cmd_stop() {
	cmd_stop_agentd
	"$SANDBOX" stop
}

cmd_status() {
	if agentd_running; then
		echo "agentd runs (pid $(cat "$PID_FILE"))"
	else
		echo "agentd does not run"
	fi
	"$SANDBOX" status || true
}

case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*)
	echo "usage: $0 start|stop|status" >&2
	exit 2
	;;
esac
