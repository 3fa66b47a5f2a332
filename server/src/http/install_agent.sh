#!/bin/sh
# Proxmox Monitor: installs the agent on this node (run it as root).
#
# Served by the Proxmox Monitor server at @SERVER@/install/agent.sh, with this server's
# address and its agent binary's SHA-256 filled in. The dashboard (Manage hosts, then
# "Add a host" or "Rotate token") shows the line to run on the node, e.g.:
#
#   curl -fsSL @SERVER@/install/agent.sh | PM_TOKEN='TOKEN' sh -s -- --host NAME
#
# The token is read from the environment (PM_TOKEN), never from an argument or a URL:
# arguments can be read by every user of the node in ps, and URLs end up in the logs of
# proxies and web servers. To read this script before running it:
#
#   curl -fsSLo install-agent.sh @SERVER@/install/agent.sh
#   PM_TOKEN='TOKEN' sh install-agent.sh --host NAME
#
# What it does: downloads the static agent from @SERVER@/install/agent, checks its SHA-256
# against the one this script came with, installs it as /usr/local/bin/proxmox-monitor-agent,
# writes /etc/proxmox-monitor/agent.toml (mode 0600; a previous one is kept as
# agent.toml.old), installs /etc/systemd/system/proxmox-monitor-agent.service and (re)starts
# it. Where the Debian package proxmox-monitor-agent is installed, it only writes the config
# and restarts the packaged service.
#
# Options:
#   --host NAME      the host's name as registered on the server (default: this machine's name)
#   --ca-file PATH   a PEM CA certificate to trust for the server (a private CA): used for the
#                    download here, and written to agent.toml as ca_file
#   --no-systemd     install the files only, run no systemctl
# Environment:
#   PM_TOKEN         the host's token (required)
#   PM_ROOT          install under this directory instead of / (images, tests); with it,
#                    systemctl only enables the unit inside that root (systemctl --root)
set -eu

# Everything runs from main, called on the last line: a download cut short (curl … | sh)
# defines part of a function and runs nothing.
main() {
    SERVER='@SERVER@'
    AGENT_SHA256='@AGENT_SHA256@'
    VERSION='@VERSION@'

    die() {
        echo "proxmox-monitor install: $*" >&2
        exit 1
    }
    say() { echo "proxmox-monitor install: $*"; }

    host=$(uname -n)
    ca_file=
    systemd=1
    while [ $# -gt 0 ]; do
        case $1 in
            --host)
                [ $# -ge 2 ] || die "--host needs a name"
                host=$2
                shift 2
                ;;
            --host=*) host=${1#--host=}; shift ;;
            --ca-file)
                [ $# -ge 2 ] || die "--ca-file needs a path"
                ca_file=$2
                shift 2
                ;;
            --ca-file=*) ca_file=${1#--ca-file=}; shift ;;
            --no-systemd) systemd=; shift ;;
            -h | --help)
                echo "usage: curl -fsSL $SERVER/install/agent.sh | PM_TOKEN='TOKEN' sh -s -- --host NAME [--ca-file PATH] [--no-systemd]"
                exit 0
                ;;
            *) die "unknown argument '$1' (options: --host NAME, --ca-file PATH, --no-systemd)" ;;
        esac
    done

    token=${PM_TOKEN:-}
    [ -n "$token" ] || die "PM_TOKEN is not set: run the line the dashboard shows (Manage hosts, Add a host)"
    case $token in
        *[!A-Za-z0-9_-]*) die "PM_TOKEN is not a token (tokens are letters, digits, - and _)" ;;
    esac
    case $host in
        '' | *[!A-Za-z0-9._-]*) die "host name '$host' is not allowed (1-100 of A-Z a-z 0-9 . _ -)" ;;
    esac
    [ ${#host} -le 100 ] || die "host name '$host' is longer than 100 characters"
    if [ -n "$ca_file" ]; then
        case $ca_file in
            /*) ;;
            *) die "--ca-file needs an absolute path (the service reads it from anywhere)" ;;
        esac
        case $ca_file in
            *[!A-Za-z0-9/._+-]*) die "--ca-file: keep the path to letters, digits and / . _ + -" ;;
            /home/* | /root/* | /run/user/*) die "--ca-file: the service cannot see $ca_file (ProtectHome); put it under /etc/proxmox-monitor" ;;
        esac
        [ -r "$ca_file" ] || die "cannot read $ca_file"
    fi

    root=${PM_ROOT:-}
    if [ -z "$root" ] && [ "$(id -u)" != 0 ]; then
        die "run me as root (sudo)"
    fi

    case $SERVER in
        https://*) socket_url="wss://${SERVER#https://}/socket/websocket" ;;
        *) socket_url="ws://${SERVER#http://}/socket/websocket" ;;
    esac

    # fetch URL FILE
    fetch() {
        if command -v curl >/dev/null 2>&1; then
            if [ -n "$ca_file" ]; then
                curl -fsSL --cacert "$ca_file" -o "$2" "$1"
            else
                curl -fsSL -o "$2" "$1"
            fi
        elif command -v wget >/dev/null 2>&1; then
            if [ -n "$ca_file" ]; then
                wget -q --ca-certificate="$ca_file" -O "$2" "$1"
            else
                wget -q -O "$2" "$1"
            fi
        else
            die "neither curl nor wget is installed"
        fi
    }

    bin=/usr/local/bin/proxmox-monitor-agent
    unit=proxmox-monitor-agent.service
    packaged=
    if [ -x "$root/usr/bin/proxmox-monitor-agent" ] && [ -f "$root/usr/lib/systemd/system/$unit" ]; then
        packaged=1
        say "the Debian package proxmox-monitor-agent is installed: writing its config only"
    fi

    umask 022
    if [ -z "$packaged" ]; then
        mkdir -p "$root/usr/local/bin"
        # The download lands beside its final place: /tmp may be mounted noexec, and the rename
        # replaces a running agent's binary without "text file busy".
        tmp=$(mktemp -d "$root/usr/local/bin/.proxmox-monitor-agent.XXXXXX")
        trap 'rm -rf "$tmp"' EXIT
        say "downloading the agent from $SERVER/install/agent"
        fetch "$SERVER/install/agent" "$tmp/agent" || die "downloading $SERVER/install/agent failed"
        sum=$(sha256sum "$tmp/agent")
        sum=${sum%% *}
        [ "$sum" = "$AGENT_SHA256" ] ||
            die "the download's SHA-256 is $sum, not $AGENT_SHA256 (was the server's agent replaced meanwhile? run the line again)"
        chmod 0755 "$tmp/agent"
        "$tmp/agent" --version >/dev/null 2>&1 ||
            die "the downloaded agent does not run on this machine ($(uname -m)); the server hands out $VERSION for x86_64"
        mv -f "$tmp/agent" "$root$bin"
        say "installed $bin ($("$root$bin" --version))"
    fi

    conf_dir=$root/etc/proxmox-monitor
    conf=$conf_dir/agent.toml
    mkdir -p "$conf_dir"
    (umask 077 && {
        echo "# Proxmox Monitor agent of host $host; keep this file mode 0600: it holds the token."
        echo "server_url = \"$socket_url\""
        echo "token = \"$token\""
        echo "host_id = \"$host\""
        if [ -n "$ca_file" ]; then
            echo "ca_file = \"$ca_file\""
        elif [ "${SERVER#https://}" != "$SERVER" ]; then
            echo "# ca_file = \"/etc/proxmox-monitor/ca.pem\"   # when the server's certificate is from a private CA"
        fi
    } >"$conf.new")
    chmod 0600 "$conf.new"
    if [ -f "$conf" ]; then
        cp -p "$conf" "$conf.old"
        chmod 0600 "$conf.old"
        say "kept the previous config as $conf.old"
    fi
    mv -f "$conf.new" "$conf"
    say "wrote ${conf#"$root"} (0600) for host $host, server $socket_url"

    # The spool of unsent samples (state_dir); the server's package may own it already.
    [ -d "$root/var/lib/proxmox-monitor" ] || mkdir -p -m 0700 "$root/var/lib/proxmox-monitor"

    if [ -z "$packaged" ]; then
        mkdir -p "$root/etc/systemd/system"
        cat >"$root/etc/systemd/system/$unit" <<'PROXMOX_MONITOR_UNIT'
@UNIT@
PROXMOX_MONITOR_UNIT
        chmod 0644 "$root/etc/systemd/system/$unit"
        say "installed /etc/systemd/system/$unit"
    fi

    if [ -z "$systemd" ]; then
        say "done (--no-systemd: start it with: systemctl daemon-reload && systemctl enable --now ${unit%.service})"
        exit 0
    fi
    command -v systemctl >/dev/null 2>&1 || die "systemctl not found: start $bin --config /etc/proxmox-monitor/agent.toml run yourself, or use --no-systemd"
    if [ -n "$root" ]; then
        systemctl --root="$root" enable "$unit"
        say "done: enabled in $root; it starts when that system boots"
        exit 0
    fi
    systemctl daemon-reload
    systemctl enable "$unit" >/dev/null 2>&1 || systemctl enable "$unit"
    systemctl restart "$unit"
    if systemctl is-active --quiet "$unit"; then
        say "done: the agent runs; host $host shows online at $SERVER/ within seconds"
    else
        die "the agent did not start; see: journalctl -u ${unit%.service} -n 50"
    fi
}

main "$@"
