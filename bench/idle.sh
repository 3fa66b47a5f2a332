#!/usr/bin/env bash
# Proxmox Monitor at rest (part of `make bench`, runnable alone):
#
#  1. The release agent at its default intervals (fast 30 s, medium 300 s, slow 1800 s) connected
#     to a local server, side by side with node_exporter scraped every 30 s, both measured over the
#     same IDLE_SECONDS (300) window: on-CPU time of every thread from /proc/PID/task/*/schedstat
#     (nanoseconds, not ticks) and voluntary context switches (wake-ups).
#  2. The server with IDLE_AGENTS (1000) simulated agents connected, each pushing one sample every
#     30 s, for IDLE_SERVER_SECONDS (120): the server's CPU, scaled to an hour.
#  3. The server with IDLE_HTTP_CONNS (50) HTTP keep-alive connections, each sending one
#     `GET /healthz` every 20 s (inside the 30 s idle limit), for IDLE_HTTP_SECONDS (60): the
#     server's CPU and voluntary context switches (wake-ups). Also for BASELINE_SERVER if set.
#
# Prints `key=value` lines on stdout (progress on stderr). Environment: AGENT, SERVER, LOADGEN
# (binaries), NE_BIN (node_exporter; empty skips it), OUT (scratch directory), IDLE_SECONDS,
# IDLE_AGENTS, IDLE_SERVER_SECONDS, IDLE_HTTP_CONNS, IDLE_HTTP_SECONDS, BASELINE_SERVER. Every process it starts is stopped by pid on exit.
set -euo pipefail

: "${AGENT:?}" "${SERVER:?}" "${LOADGEN:?}" "${OUT:?}"
NE_BIN=${NE_BIN:-}
IDLE_SECONDS=${IDLE_SECONDS:-300}
IDLE_AGENTS=${IDLE_AGENTS:-1000}
IDLE_SERVER_SECONDS=${IDLE_SERVER_SECONDS:-120}
mkdir -p "$OUT"

STARTED=()
cleanup() {
	local pid
	for pid in "${STARTED[@]}"; do
		kill -INT "$pid" 2>/dev/null || true
	done
	sleep 0.5
	for pid in "${STARTED[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
	done
}
trap cleanup EXIT

free_port() {
	local port
	for _ in $(seq 200); do
		port=$((20000 + RANDOM % 20000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return
		fi
	done
	echo "no free port found" >&2
	exit 1
}

wait_port() {
	for _ in $(seq 300); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "nothing listens on port $1" >&2
	exit 1
}

# On-CPU nanoseconds of all live threads of a pid.
sched_ns() { cat /proc/"$1"/task/*/schedstat | awk '{ s += $1 } END { printf "%d\n", s }'; }
# Voluntary context switches of all live threads of a pid.
vcsw() { cat /proc/"$1"/task/*/status | awk '/^voluntary_ctxt_switches:/ { s += $2 } END { print s + 0 }'; }

# ------------------------------------------------------------------ agent vs node_exporter
dir=$OUT/idle-agent
mkdir -p "$dir"
token=$("$SERVER" --database "$dir/server.db" --bcrypt-cost 4 register-host idle-agent | sed -n 's/^TOKEN: //p')
port=$(free_port)
"$SERVER" --database "$dir/server.db" --listen "127.0.0.1:$port" --log-level warn serve 2>>"$dir/server.log" &
server_pid=$!
STARTED+=("$server_pid")
wait_port "$port"
cat >"$dir/agent.toml" <<EOF
server_url = "ws://127.0.0.1:$port/socket/websocket"
token = "$token"
host_id = "idle-agent"
state_dir = "$dir/state"
log_level = "warn"
EOF
"$AGENT" --config "$dir/agent.toml" run 2>"$dir/agent.log" &
agent_pid=$!
STARTED+=("$agent_pid")
ne_pid=
if [ -n "$NE_BIN" ]; then
	ne_port=$(free_port)
	"$NE_BIN" --web.listen-address="127.0.0.1:$ne_port" 2>"$dir/node_exporter.log" &
	ne_pid=$!
	STARTED+=("$ne_pid")
	wait_port "$ne_port"
	curl -s -o /dev/null "http://127.0.0.1:$ne_port/metrics" # warm-up, as Prometheus' first scrape
fi
# Connected, and the first fast/medium/slow collections done (they run on the agent's
# collector thread, so "online" can come before the first slow one has finished; a window
# opened then would count start-up work as rest): the steady state starts once the agent's CPU
# time stands still for two seconds (at most 60 s).
for _ in $(seq 100); do
	[ "$("$SERVER" --database "$dir/server.db" hosts 2>/dev/null | grep -c 'idle-agent.*online')" -gt 0 ] && break
	sleep 0.1
done
settled=$(sched_ns "$agent_pid")
for _ in $(seq 30); do
	sleep 2
	now_ns=$(sched_ns "$agent_pid")
	[ $((now_ns - settled)) -lt 1000000 ] && break
	settled=$now_ns
done
echo "agent at default intervals and node_exporter scraped every 30 s, ${IDLE_SECONDS} s side by side" >&2
a_cpu0=$(sched_ns "$agent_pid") a_cs0=$(vcsw "$agent_pid")
if [ -n "$ne_pid" ]; then ne_cpu0=$(sched_ns "$ne_pid") ne_cs0=$(vcsw "$ne_pid"); fi
t0=$(date +%s.%N)
end=$(awk -v t="$t0" -v s="$IDLE_SECONDS" 'BEGIN { printf "%.3f", t + s }')
scrapes=0
while :; do
	now=$(date +%s.%N)
	left=$(awk -v e="$end" -v n="$now" 'BEGIN { print (e - n > 0) ? e - n : 0 }')
	[ "$left" = 0 ] && break
	if [ -n "$ne_pid" ] && awk -v l="$left" -v s="$IDLE_SECONDS" -v k="$scrapes" 'BEGIN { exit !(s - l >= 30 * k) }'; then
		curl -s -o /dev/null "http://127.0.0.1:$ne_port/metrics"
		scrapes=$((scrapes + 1))
		continue
	fi
	sleep "$(awk -v l="$left" -v s="$IDLE_SECONDS" -v k="$scrapes" 'BEGIN { w = 30 * k - (s - l); if (w > l || w <= 0) w = l; printf "%.3f", w }')"
done
t1=$(date +%s.%N)
a_cpu1=$(sched_ns "$agent_pid") a_cs1=$(vcsw "$agent_pid")
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
echo "idle_window_s=$secs"
echo "idle_agent_cpu_ms=$(awk -v a="$a_cpu0" -v b="$a_cpu1" 'BEGIN { printf "%.2f", (b - a) / 1e6 }')"
echo "idle_agent_cpu_ms_per_hour=$(awk -v a="$a_cpu0" -v b="$a_cpu1" -v s="$secs" 'BEGIN { printf "%.1f", (b - a) / 1e6 * 3600 / s }')"
echo "idle_agent_vcsw=$((a_cs1 - a_cs0))"
echo "idle_agent_vcsw_per_hour=$(awk -v a="$a_cs0" -v b="$a_cs1" -v s="$secs" 'BEGIN { printf "%d", (b - a) * 3600 / s }')"
if [ -n "$ne_pid" ]; then
	ne_cpu1=$(sched_ns "$ne_pid") ne_cs1=$(vcsw "$ne_pid")
	echo "idle_ne_scrapes=$scrapes"
	echo "idle_ne_cpu_ms=$(awk -v a="$ne_cpu0" -v b="$ne_cpu1" 'BEGIN { printf "%.2f", (b - a) / 1e6 }')"
	echo "idle_ne_vcsw=$((ne_cs1 - ne_cs0))"
	echo "idle_agent_over_ne=$(awk -v a="$((a_cpu1 - a_cpu0))" -v b="$((ne_cpu1 - ne_cpu0))" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "-" }')"
	kill -TERM "$ne_pid" 2>/dev/null || true
	wait "$ne_pid" 2>/dev/null || true
fi
kill -INT "$agent_pid"
wait "$agent_pid" || true
kill -INT "$server_pid"
wait "$server_pid" || true

# ------------------------------------------------------------------ server with idle agents
dir=$OUT/idle-server
mkdir -p "$dir"
echo "server with $IDLE_AGENTS agents pushing every 30 s, ${IDLE_SERVER_SECONDS} s" >&2
"$LOADGEN" --log-level warn register --database "$dir/server.db" --count "$IDLE_AGENTS" --cost 4 --tokens "$dir/tokens.txt" >&2
port=$(free_port)
"$SERVER" --database "$dir/server.db" --listen "127.0.0.1:$port" --log-level warn serve 2>>"$dir/server.log" &
server_pid=$!
STARTED+=("$server_pid")
wait_port "$port"
"$LOADGEN" --log-level warn run --url "ws://127.0.0.1:$port/socket/websocket" --tokens "$dir/tokens.txt" \
	--agents "$IDLE_AGENTS" --duration "$IDLE_SERVER_SECONDS" --mode interval --interval-ms 30000 --guests 30 \
	--server-pid "$server_pid" --label "idle-$IDLE_AGENTS" >"$dir/run.txt"
kill -INT "$server_pid"
wait "$server_pid" || true
summary=$(grep '^summary ' "$dir/run.txt" | tail -1)
srv_cpu=$(grep -oE ' server_cpu_s=[^ ]+' <<<"$summary" | cut -d= -f2)
pushed=$(grep -oE ' pushed=[^ ]+' <<<"$summary" | cut -d= -f2)
echo "idle_server_agents=$IDLE_AGENTS"
echo "idle_server_seconds=$IDLE_SERVER_SECONDS"
echo "idle_server_pushed=$pushed"
echo "idle_server_rss_mib=$(grep -oE ' server_rss_mib=[^ ]+' <<<"$summary" | cut -d= -f2)"
echo "idle_server_cpu_s=$srv_cpu"
echo "idle_server_cpu_s_per_hour=$(awk -v c="$srv_cpu" -v s="$IDLE_SERVER_SECONDS" 'BEGIN { printf "%.1f", c * 3600 / s }')"
rm -f "$dir"/*.db "$dir"/*.db-wal "$dir"/*.db-shm

# ------------------------------------------------------------------ server with idle HTTP clients
IDLE_HTTP_CONNS=${IDLE_HTTP_CONNS:-50}
IDLE_HTTP_SECONDS=${IDLE_HTTP_SECONDS:-60}
# One GET /healthz on each open keep-alive connection (file descriptors in KA_FDS), answer read.
ka_round() {
	local fd line length
	for fd in "${KA_FDS[@]}"; do
		cat "$KA_REQUEST" >&"$fd" # one write (bash's printf writes line by line)
	done
	for fd in "${KA_FDS[@]}"; do
		length=0
		while IFS= read -r -t 10 line <&"$fd"; do
			line=${line%$'\r'}
			[ -z "$line" ] && break
			case ${line,,} in content-length:*) length=${line#*:} length=${length// /} ;; esac
		done
		if [ "$length" -gt 0 ]; then
			read -r -t 10 -N "$length" line <&"$fd"
		fi
	done
}
# Usage: keepalive_run LABEL SERVER_BINARY; prints idle_http_LABEL_* lines.
keepalive_run() {
	local label=$1 binary=$2 dir=$OUT/idle-http-$1 port pid fd cpu0 cs0 cpu1 cs1 waited
	mkdir -p "$dir"
	port=$(free_port)
	"$binary" --database "$dir/server.db" --listen "127.0.0.1:$port" --log-level warn serve 2>>"$dir/server.log" &
	pid=$!
	STARTED+=("$pid")
	wait_port "$port"
	KA_FDS=()
	KA_REQUEST=$dir/request
	printf 'GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n' >"$KA_REQUEST"
	for _ in $(seq "$IDLE_HTTP_CONNS"); do
		exec {fd}<>"/dev/tcp/127.0.0.1/$port"
		KA_FDS+=("$fd")
	done
	ka_round
	sleep 2
	echo "server ($label) with $IDLE_HTTP_CONNS idle keep-alive HTTP connections, ${IDLE_HTTP_SECONDS} s" >&2
	cpu0=$(sched_ns "$pid") cs0=$(vcsw "$pid")
	waited=0
	while [ "$waited" -lt "$IDLE_HTTP_SECONDS" ]; do
		sleep $((IDLE_HTTP_SECONDS - waited < 20 ? IDLE_HTTP_SECONDS - waited : 20))
		waited=$((waited + 20))
		if [ "$waited" -lt "$IDLE_HTTP_SECONDS" ]; then
			ka_round
		fi
	done
	cpu1=$(sched_ns "$pid") cs1=$(vcsw "$pid")
	for fd in "${KA_FDS[@]}"; do exec {fd}>&-; done
	kill -INT "$pid"
	wait "$pid" || true
	echo "idle_http_${label}_cpu_ms=$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.1f", (b - a) / 1e6 }')"
	echo "idle_http_${label}_vcsw=$((cs1 - cs0))"
	rm -f "$dir"/*.db "$dir"/*.db-wal "$dir"/*.db-shm
}
echo "idle_http_conns=$IDLE_HTTP_CONNS"
echo "idle_http_seconds=$IDLE_HTTP_SECONDS"
keepalive_run now "$SERVER"
if [ -n "${BASELINE_SERVER:-}" ]; then
	keepalive_run baseline "$BASELINE_SERVER"
fi
