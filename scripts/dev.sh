#!/usr/bin/env bash
# Local development helpers behind `make register`, `make demo` and `make demo-stop`.
#
#   scripts/dev.sh register NAME   register NAME in ./var/server.db, write ./var/agent.toml
#   scripts/dev.sh demo            (re)start server + agent for this machine in the background
#   scripts/dev.sh stop            stop what `demo` started (pids in ./var/*.pid)
#
# Everything lives in ./var; re-running `demo` stops the previous demo first, so nothing is
# left behind. Only processes whose pid file we wrote and whose command line is ours are killed.
set -euo pipefail

cd "$(dirname "$0")/.."
VAR=./var
SERVER=./target/debug/proxmox-monitor-server
AGENT=./target/debug/proxmox-monitor-agent
LISTEN=${LISTEN:-127.0.0.1:4000}
DB=$VAR/server.db

server_admin() {
    local config=()
    [[ -f $VAR/server.toml ]] && config=(--config "$VAR/server.toml")
    "$SERVER" "${config[@]}" --database "$DB" "$@"
}

# write_agent_config NAME TOKEN
write_agent_config() {
    local name=$1 token=$2
    umask 077
    cat >"$VAR/agent.toml" <<EOF
# Written by scripts/dev.sh for local development.
server_url = "ws://$LISTEN/socket/websocket"
token = "$token"
host_id = "$name"
state_dir = "$VAR/agent-state"

[intervals]
fast_seconds = 5
EOF
    echo "wrote $VAR/agent.toml for host '$name'"
}

# Registers NAME (or gives it a new token if it exists) and writes the agent config.
register() {
    local name=$1 out token
    mkdir -p "$VAR"
    if server_admin hosts | awk 'NR > 1 { print $1 }' | grep -qxF -- "$name"; then
        out=$(server_admin rotate-token "$name")
    else
        out=$(server_admin register-host "$name")
    fi
    echo "$out" | grep -v '^TOKEN: '
    token=$(echo "$out" | sed -n 's/^TOKEN: //p')
    [[ -n $token ]] || { echo "no token in the output above" >&2; exit 1; }
    write_agent_config "$name" "$token"
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
    stop_pidfile "$VAR/agent.pid"
    stop_pidfile "$VAR/server.pid"
}

demo() {
    cargo build --workspace --bins
    mkdir -p "$VAR"
    stop
    local name
    name=$(hostname 2>/dev/null || cat /proc/sys/kernel/hostname)
    name=$(printf '%s' "$name" | tr -c 'A-Za-z0-9._-' '-' | cut -c1-100)
    register "$name"

    : >"$VAR/server.log"
    nohup "$SERVER" --database "$DB" --listen "$LISTEN" serve \
        >>"$VAR/server.log" 2>&1 </dev/null &
    echo $! >"$VAR/server.pid"
    local i
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

    : >"$VAR/agent.log"
    nohup "$AGENT" --config "$VAR/agent.toml" run >>"$VAR/agent.log" 2>&1 </dev/null &
    echo $! >"$VAR/agent.pid"
    local online=
    for i in $(seq 150); do
        if server_admin hosts | awk -v n="$name" '$1 == n && $2 == "online" { found = 1 } END { exit !found }'; then
            online=1
            break
        fi
        sleep 0.2
    done
    if [[ -z $online ]]; then
        echo "host '$name' did not come online within 30 s; agent log:" >&2
        cat "$VAR/agent.log" >&2
        stop
        exit 1
    fi

    cat <<EOF

Proxmox Monitor demo is running: host '$name' is online.

Hosts table:   $SERVER --database $DB hosts
$(server_admin hosts | sed 's/^/    /')

Dashboard:     http://$LISTEN/   (user admin, password: $(cat "$password_file"), kept in $password_file)
Health:        http://$LISTEN/healthz
Logs:          tail -f $VAR/server.log $VAR/agent.log
Stop:          make demo-stop   (pids in $VAR/server.pid, $VAR/agent.pid)
EOF
}

case ${1:-} in
    register) [[ -n ${2:-} ]] || { echo "usage: $0 register NAME" >&2; exit 2; }; register "$2" ;;
    demo) demo ;;
    stop) stop ;;
    *) echo "usage: $0 register NAME | demo | stop" >&2; exit 2 ;;
esac
