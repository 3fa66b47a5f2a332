#!/usr/bin/env bash
# Notifications (part of `make bench`; runs alone too, after `cargo build --release --workspace
# --bins`): two measurements on 127.0.0.1, each against a fresh release server.
#
# 1. Delivery latency: NOTIFY_HOSTS hosts join and leave at once; `host_offline` (for = "0s")
#    fires for each and a webhook (group_window = "0s") goes to a receiver in
#    `proxmox-monitor-loadgen notify`, which reports disconnect → message received (the whole
#    path: status change, alert evaluation, outbox write, wake-up, routing, HTTP).
# 2. Ingestion next to a receiver that never answers in time: NOTIFY_LOAD_AGENTS agents push
#    every second for NOTIFY_LOAD_SECONDS, once against a server without channels and once
#    against one whose only channel is a webhook to a receiver that holds every request for
#    60 s while alerts are waiting to be sent (the delivery thread sits in a request the whole
#    run). push→reply p50/p99 and the server's CPU side by side.
#
# Prints `summary label=…` lines (bench/run.sh collects them). Every process it starts is
# stopped by pid on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

HOSTS=${NOTIFY_HOSTS:-50}
LOAD_AGENTS=${NOTIFY_LOAD_AGENTS:-200}
LOAD_SECONDS=${NOTIFY_LOAD_SECONDS:-30}
SERVER=${SERVER:-./target/release/proxmox-monitor-server}
LOADGEN=${LOADGEN:-./target/release/proxmox-monitor-loadgen}
PYTHON=$(command -v /usr/bin/python3 || command -v python3)
OUT=${NOTIFY_OUT:-$(mktemp -d /tmp/pm-bench-notify.XXXXXX)}
mkdir -p "$OUT"
PIDS=()
cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT

free_port() {
	"$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
	for _ in $(seq 1 200); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.05
	done
	echo "nothing listens on port $1" >&2
	exit 1
}

# Usage: server DIR CONFIG: starts the server on DIR/server.db; sets SERVER_PID, PORT.
server() {
	PORT=$(free_port)
	"$SERVER" --config "$2" --database "$1/server.db" --listen "127.0.0.1:$PORT" \
		--log-level warn serve 2>>"$1/server.log" &
	SERVER_PID=$!
	PIDS+=("$SERVER_PID")
	wait_port "$PORT"
}
# A stop waits for a delivery in flight (up to [notify] timeout): after 5 s, SIGKILL.
stop() {
	kill -INT "$SERVER_PID" 2>/dev/null || true
	for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.05; done
	kill -KILL "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" 2>/dev/null || true
}

# ------------------------------------------------------------------- 1. latency
dir=$OUT/latency
mkdir -p "$dir"
receiver=$(free_port)
cat >"$dir/server.toml" <<EOF
[alerts.rules.host_offline]
for = "0s"
[notify]
group_window = "0s"
[notify.channels.hook]
type = "webhook"
url = "http://127.0.0.1:$receiver/hook"
EOF
chmod 0600 "$dir/server.toml"
"$LOADGEN" --log-level warn register --database "$dir/server.db" --count "$HOSTS" --cost 4 \
	--tokens "$dir/tokens.txt" --shared-token >&2
server "$dir" "$dir/server.toml"
"$LOADGEN" --log-level warn notify --url "ws://127.0.0.1:$PORT/socket/websocket" \
	--tokens "$dir/tokens.txt" --agents "$HOSTS" --receiver "127.0.0.1:$receiver" \
	--label "notify-latency-$HOSTS"
stop

# ------------------------------------------------------------------- 2. a receiver that hangs
# Usage: load LABEL CONFIG_EXTRA: HOSTS hosts go offline (alerts to deliver), then the load run.
load() {
	local label=$1 dir=$OUT/$1
	mkdir -p "$dir"
	printf '[alerts.rules.host_offline]\nfor = "0s"\n%s\n' "$2" >"$dir/server.toml"
	chmod 0600 "$dir/server.toml"
	"$LOADGEN" --log-level warn register --database "$dir/server.db" --count "$LOAD_AGENTS" --cost 4 \
		--tokens "$dir/tokens.txt" --shared-token >&2
	"$LOADGEN" --log-level warn register --database "$dir/server.db" --count "$HOSTS" --cost 4 \
		--tokens "$dir/flap.txt" --prefix flap- --shared-token >&2
	server "$dir" "$dir/server.toml"
	# The flapping hosts join and leave: HOSTS alerts wait for the (hanging) receiver.
	"$LOADGEN" --log-level warn run --url "ws://127.0.0.1:$PORT/socket/websocket" --tokens "$dir/flap.txt" \
		--agents "$HOSTS" --duration 1 --mode interval --label flap >/dev/null
	"$LOADGEN" --log-level warn run --url "ws://127.0.0.1:$PORT/socket/websocket" --tokens "$dir/tokens.txt" \
		--agents "$LOAD_AGENTS" --duration "$LOAD_SECONDS" --mode interval --interval-ms 1000 \
		--server-pid "$SERVER_PID" --label "$label" | grep '^summary'
	if [ -n "$2" ]; then
		echo "summary label=$label-receiver requests_answered=$(grep -c '"status": 200' "$dir/http.jsonl" 2>/dev/null || true) requests_held=$(grep -c '"status": 0' "$dir/http.jsonl" 2>/dev/null || true)"
	fi
	stop
}
load "notify-load-no-channel" ""
dir=$OUT/notify-load-hanging-receiver
mkdir -p "$dir"
"$PYTHON" server/tests/receivers/http_receiver.py "$dir/http.port" "$dir/http.jsonl" --slow 60 \
	>"$dir/http.out" 2>&1 &
PIDS+=("$!")
for _ in $(seq 1 200); do [ -f "$dir/http.port" ] && break; sleep 0.05; done
load "notify-load-hanging-receiver" "[notify]
group_window = \"0s\"
timeout = \"60s\"
[notify.channels.hook]
type = \"webhook\"
url = \"http://127.0.0.1:$(cat "$dir/http.port")/slow/hook\""
echo "notify bench files in $OUT" >&2
