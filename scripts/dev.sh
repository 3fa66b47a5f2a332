#!/usr/bin/env bash
# Local development helpers behind `make register`, `make demo` and `make demo-stop`.
#
#   scripts/dev.sh register NAME   register NAME in ./var/server.db, write ./var/agent.toml
#   scripts/dev.sh demo            (re)start the server, an agent for this machine, and two
#                                  simulated Proxmox VE nodes (pve-sim1, pve-sim2: a fixture
#                                  tree each, whose counters proxmox-monitor-simnode moves every
#                                  second, read by an agent of its own) in the background
#   scripts/dev.sh stop            stop what `demo` started (pids in ./var/*.pid)
#
# Everything lives in ./var; re-running `demo` stops the previous demo first, so nothing is
# left behind. Only processes whose pid file we wrote and whose command line is ours are killed.
# Environment: LISTEN (127.0.0.1:4000), VAR (./var), BIN_DIR (./target/debug: the binaries),
# DEMO_BUILD=0 (use BIN_DIR as it is instead of running cargo build first).
set -euo pipefail

cd "$(dirname "$0")/.."
VAR=${VAR:-./var}
BIN_DIR=${BIN_DIR:-./target/debug}
SERVER=$BIN_DIR/proxmox-monitor-server
AGENT=$BIN_DIR/proxmox-monitor-agent
SIMNODE=$BIN_DIR/proxmox-monitor-simnode
LISTEN=${LISTEN:-127.0.0.1:4000}
DB=$VAR/server.db
# The simulated nodes of the demo (see simnode/src/scenario.rs).
SIM_NODES=(pve-sim1 pve-sim2)

server_admin() {
    local config=()
    [[ -f $VAR/server.toml ]] && config=(--config "$VAR/server.toml")
    "$SERVER" "${config[@]}" --database "$DB" "$@"
}

# write_agent_config NAME TOKEN FILE STATE_DIR [ROOT]
write_agent_config() {
    local name=$1 token=$2 file=$3 state=$4 root_line=
    [[ -z ${5:-} ]] || root_line="root = \"$5\""
    (
        umask 077
        cat >"$file" <<EOF
# Written by scripts/dev.sh for local development.
server_url = "ws://$LISTEN/socket/websocket"
token = "$token"
host_id = "$name"
state_dir = "$state"
$root_line

[intervals]
fast_seconds = 5
medium_seconds = 60
EOF
    )
    echo "wrote $file for host '$name'"
}

# Registers NAME (or gives it a new token if it exists) and writes its agent config to FILE
# (default $VAR/agent.toml), reading the node under ROOT when given.
register() {
    local name=$1 file=${2:-$VAR/agent.toml} state=${3:-$VAR/agent-state} root=${4:-} out token
    mkdir -p "$VAR"
    if server_admin hosts | awk 'NR > 1 { print $1 }' | grep -qxF -- "$name"; then
        out=$(server_admin rotate-token "$name")
    else
        out=$(server_admin register-host "$name")
    fi
    echo "$out" | grep -v '^TOKEN: '
    token=$(echo "$out" | sed -n 's/^TOKEN: //p')
    [[ -n $token ]] || { echo "no token in the output above" >&2; exit 1; }
    write_agent_config "$name" "$token" "$file" "$state" "$root"
}

is_ours() {
    local pid=$1
    [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q proxmox-monitor
}

# stop_pidfile FILE: SIGINT, wait up to 5 s, then SIGKILL.
stop_pidfile() {
    local file=$1 pid i
    [[ -f $file ]] || return 0
    pid=$(cat "$file")
    if [[ $pid =~ ^[0-9]+$ ]] && is_ours "$pid"; then
        kill -INT "$pid" 2>/dev/null || true
        for i in $(seq 50); do
            is_ours "$pid" || break
            sleep 0.1
        done
        if is_ours "$pid"; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
        echo "stopped $(basename "$file" .pid) (pid $pid)"
    fi
    rm -f "$file"
}

stop() {
    local sim
    stop_pidfile "$VAR/agent.pid"
    for sim in "${SIM_NODES[@]}"; do
        stop_pidfile "$VAR/agent-$sim.pid"
        stop_pidfile "$VAR/simnode-$sim.pid"
    done
    stop_pidfile "$VAR/server.pid"
}

# start NAME LOG COMMAND...: runs COMMAND in the background, pid in $VAR/NAME.pid.
start() {
    local name=$1 log=$2
    shift 2
    : >"$log"
    nohup "$@" >>"$log" 2>&1 </dev/null &
    echo $! >"$VAR/$name.pid"
}

# The hosts table says NAME is online.
online() {
    server_admin hosts | awk -v n="$1" '$1 == n && $2 == "online" { found = 1 } END { exit !found }'
}

demo() {
    if [[ ${DEMO_BUILD:-1} != 0 ]]; then
        cargo build --workspace --bins
    fi
    mkdir -p "$VAR"
    stop
    local name sim i
    name=$(hostname 2>/dev/null || cat /proc/sys/kernel/hostname)
    name=$(printf '%s' "$name" | tr -c 'A-Za-z0-9._-' '-' | cut -c1-100)
    register "$name"
    # The simulated nodes: a fresh tree each (an older run's files could describe other guests).
    rm -rf "$VAR/sim"
    for sim in "${SIM_NODES[@]}"; do
        register "$sim" "$VAR/agent-$sim.toml" "$VAR/agent-state-$sim" "$VAR/sim/$sim"
    done

    start server "$VAR/server.log" "$SERVER" --database "$DB" --listen "$LISTEN" serve
    for i in $(seq 100); do
        grep -q 'listening on' "$VAR/server.log" && break
        if ! is_ours "$(cat "$VAR/server.pid")"; then
            echo "the server did not start:" >&2
            cat "$VAR/server.log" >&2
            rm -f "$VAR/server.pid"
            exit 1
        fi
        sleep 0.2
    done
    grep -q 'listening on' "$VAR/server.log" || { echo "server not listening after 20 s" >&2; stop; exit 1; }

    # The dashboard needs a password: make one for the demo (kept in ./var, readable by you only).
    local password_file="$VAR/dashboard-password"
    if [[ ! -s $password_file ]]; then
        (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' | cut -c1-20 >"$password_file")
    fi
    server_admin set-password <"$password_file" >/dev/null

    start agent "$VAR/agent.log" "$AGENT" --config "$VAR/agent.toml" run
    for sim in "${SIM_NODES[@]}"; do
        start "simnode-$sim" "$VAR/simnode-$sim.log" "$SIMNODE" --root "$VAR/sim/$sim" --node "$sim"
    done
    # Each agent starts once its tree is written (the simulator says so after writing it).
    for sim in "${SIM_NODES[@]}"; do
        for i in $(seq 100); do
            grep -q 'counters move' "$VAR/simnode-$sim.log" && break
            sleep 0.1
        done
        grep -q 'counters move' "$VAR/simnode-$sim.log" || {
            echo "the simulator of $sim did not start:" >&2
            cat "$VAR/simnode-$sim.log" >&2
            stop
            exit 1
        }
        start "agent-$sim" "$VAR/agent-$sim.log" "$AGENT" --config "$VAR/agent-$sim.toml" run
    done

    local host missing=()
    for host in "$name" "${SIM_NODES[@]}"; do
        for i in $(seq 150); do
            online "$host" && break
            sleep 0.2
        done
        online "$host" || missing+=("$host")
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        echo "not online within 30 s: ${missing[*]}; agent logs:" >&2
        tail -n 20 "$VAR"/agent*.log >&2
        stop
        exit 1
    fi

    cat <<EOF

Proxmox Monitor demo is running: this machine ('$name') and two simulated Proxmox VE nodes
(pve-sim1: 4 running and 3 stopped guests; pve-sim2: a DEGRADED pool) are online.

Hosts table:   $SERVER --database $DB hosts
$(server_admin hosts | sed 's/^/    /')

Dashboard:     http://$LISTEN/   (user admin, password: $(cat "$password_file"), kept in $password_file)
Health:        http://$LISTEN/healthz
Logs:          tail -f $VAR/server.log $VAR/agent*.log $VAR/simnode-*.log
Simulated:     $VAR/sim/pve-sim1, $VAR/sim/pve-sim2 (read with: $AGENT collect --root DIR)
Stop:          make demo-stop   (pids in $VAR/*.pid)
EOF
}

case ${1:-} in
    register) [[ -n ${2:-} ]] || { echo "usage: $0 register NAME" >&2; exit 2; }; register "$2" ;;
    demo) demo ;;
    stop) stop ;;
    *) echo "usage: $0 register NAME | demo | stop" >&2; exit 2 ;;
esac
