#!/usr/bin/env bash
# Builds proxmox-monitor-agent_<version>_amd64.deb and proxmox-monitor-server_<version>_amd64.deb
# from the static musl binaries of `make musl`, with plain dpkg-deb (no debhelper, no cargo-deb).
#
#   packaging/deb/build.sh [--bin-dir DIR] [--out DIR]     (defaults: dist/ and dist/)
#
# What goes where (and why) is in packaging/deb/README.md. The version is the workspace's
# (Cargo.toml [workspace.package]); a native package, so no Debian revision. File times are
# SOURCE_DATE_EPOCH (default: the last commit's time), so the same tree gives the same .debs.
# Needs dpkg-deb, gzip and cargo (for the list of statically linked crates in `copyright`).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin_dir=$repo/dist
out_dir=$repo/dist
while [[ $# -gt 0 ]]; do
    case $1 in
        --bin-dir) bin_dir=$2; shift 2 ;;
        --out) out_dir=$2; shift 2 ;;
        -h | --help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

MAINTAINER=${DEB_MAINTAINER:-Proxmox Monitor maintainers <maintainers@users.noreply.r-seed-782d2198.example>}
TARGET=x86_64-unknown-linux-musl

die() { echo "build.sh: $*" >&2; exit 1; }

for tool in dpkg-deb gzip cargo; do
    command -v "$tool" >/dev/null || die "$tool not found"
done

version=$(awk '
    /^\[workspace\.package\]/ { section = 1; next }
    /^\[/ { section = 0 }
    section && $1 == "version" { gsub(/[" ]/, "", $3); print $3; exit }
' "$repo/Cargo.toml")
[[ $version =~ ^[0-9][0-9A-Za-z.+~]*$ ]] || die "no usable version in $repo/Cargo.toml: '$version'"

if [[ -z ${SOURCE_DATE_EPOCH:-} ]]; then
    SOURCE_DATE_EPOCH=$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH
changelog_date=$(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")

for bin in proxmox-monitor-agent proxmox-monitor-server; do
    [[ -x $bin_dir/$bin ]] || die "$bin_dir/$bin is missing: run make musl first"
    case $(file -b "$bin_dir/$bin" 2>/dev/null || echo unknown) in
        *x86-64*"statically linked"* | *x86-64*"static-pie linked"* | unknown) ;;
        *) die "$bin_dir/$bin is not a static x86-64 binary (make musl builds one)" ;;
    esac
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out_dir"

# The crates linked into the binaries of the packages named: "name version<TAB>license", sorted.
crates() {
    local out packages=() p
    for p in "$@"; do packages+=(-p "$p"); done
    out=$(cd "$repo" && cargo tree --locked --offline -e normal,no-proc-macro --prefix none \
        --target "$TARGET" "${packages[@]}" --format '{p}|{l}' 2>/dev/null) ||
        out=$(cd "$repo" && cargo tree --locked -e normal,no-proc-macro --prefix none \
            --target "$TARGET" "${packages[@]}" --format '{p}|{l}') ||
        die "cargo tree ${packages[*]} failed"
    sed -e 's/ (\*)$//' -e 's/ ([^)]*)|/|/' -e 's/^\([^ ]*\) v/\1 /' <<<"$out" |
        awk -F'|' '$1 !~ /^proxmox-monitor-/ { printf "%s\t%s\n", $1, $2 }' | sort -u
}

# Prints the licenses (one per line) whose texts `copyright` must carry for EXPRESSION: for
# each AND term, the first alternative we have a text for (MIT and Apache-2.0 preferred).
# Fails naming the crate when no alternative has a text in licenses/.
needed_licenses() {
    local crate=$1 expression=$2 term alternative chosen
    expression=${expression//\//" OR "}
    expression=${expression//[()]/}
    while read -r term; do
        [[ -n $term ]] || continue
        chosen=
        for alternative in MIT Apache-2.0 $(sed 's/ OR /\n/g' <<<"$term"); do
            if [[ " ${term//" OR "/ } " == *" $alternative "* ]] && [[ -f $here/licenses/$alternative || $alternative == Apache-2.0 ]]; then
                chosen=$alternative
                break
            fi
        done
        [[ -n $chosen ]] || die "no license text for '$term' of crate $crate: add packaging/deb/licenses/<SPDX id>"
        echo "$chosen"
    done < <(sed 's/ AND /\n/g' <<<"$expression")
}

# copyright PACKAGE EXTRA_COMPONENTS > file
copyright() {
    local package=$1 list licenses name license binaries
    # The server's package also carries the agent that its /install/agent hands out.
    if [[ $package == proxmox-monitor-server ]]; then
        list=$(crates "$package" proxmox-monitor-agent)
        binaries="This package's binaries (the server, and the agent in /usr/lib/proxmox-monitor/
that the server hands out to nodes) are static builds ($TARGET). They contain"
    else
        list=$(crates "$package")
        binaries="This package's binary is a static build ($TARGET). It contains"
    fi
    [[ -n $list ]] || die "cargo tree listed no crates for $package"
    licenses=$(
        echo MIT
        while IFS=$'\t' read -r name license; do
            needed_licenses "$name" "$license"
        done <<<"$list"
    )
    licenses=$(sort -u <<<"$licenses")
    cat <<EOF
$package $version

Proxmox Monitor is Copyright the Proxmox Monitor developers.
It is licensed under the MIT license or the Apache License 2.0, at your option.

On Debian systems the Apache License 2.0 is in /usr/share/common-licenses/Apache-2.0.
The MIT license and the other licenses named below are at the end of this file.

$binaries musl libc (MIT;
Copyright 2005-2020 Rich Felker, et al.)${2:+, $2} and these Rust crates, each under the
license named (where it offers a choice, under any of its alternatives):

EOF
    while IFS=$'\t' read -r name license; do
        printf '  %-40s %s\n' "$name" "$license"
    done <<<"$list"
    echo
    while read -r license; do
        [[ $license == Apache-2.0 ]] && continue
        echo "License: $license"
        echo
        sed 's/^/  /; s/^  $//' "$here/licenses/$license"
        echo
    done <<<"$licenses"
}

changelog() {
    cat <<EOF
$1 ($version) unstable; urgency=medium

  * Proxmox Monitor $version. The changes are in the project's git history.

 -- $MAINTAINER  $changelog_date
EOF
}

# build PACKAGE DEPENDS SUGGESTS SYNOPSIS DESCRIPTION EXTRA_COMPONENTS: the .deb of PACKAGE,
# which is also the name of its binary and its unit.
build() {
    local package=$1 depends=$2 suggests=$3 synopsis=$4 description=$5 extra=$6 binary=$1
    local root=$work/$package short=${package#proxmox-monitor-}
    local doc=$root/usr/share/doc/$package
    install -d -m 0755 "$root/DEBIAN" "$root/usr/bin" "$root/usr/lib/systemd/system" \
        "$root/etc/proxmox-monitor" "$doc" "$root/usr/share/man/man1" \
        "$root/usr/share/lintian/overrides"
    install -m 0755 "$bin_dir/$binary" "$root/usr/bin/$binary"
    # The unit in packaging/ is written for a manual install under /usr/local.
    sed 's#/usr/local/bin/#/usr/bin/#g' "$repo/packaging/$binary.service" >"$root/usr/lib/systemd/system/$binary.service"
    chmod 0644 "$root/usr/lib/systemd/system/$binary.service"
    conffile "$short" >"$root/etc/proxmox-monitor/$short.toml"
    chmod 0640 "$root/etc/proxmox-monitor/$short.toml"
    gzip -9n <"$here/man/$binary.1" >"$root/usr/share/man/man1/$binary.1.gz"
    copyright "$package" "$extra" >"$doc/copyright"
    changelog "$package" | gzip -9n >"$doc/changelog.gz"
    if [[ $short == server ]]; then
        # The agent that /install/agent hands out (agent_binary's default path).
        install -d -m 0755 "$root/usr/lib/proxmox-monitor"
        install -m 0755 "$bin_dir/proxmox-monitor-agent" "$root/usr/lib/proxmox-monitor/proxmox-monitor-agent"
        install -d -m 0755 "$doc/examples"
        install -m 0644 "$repo/packaging/grafana-dashboard.json" "$doc/examples/grafana-dashboard.json"
    fi
    install -m 0644 "$here/lintian/$package" "$root/usr/share/lintian/overrides/$package"
    chmod 0644 "$root/usr/share/man/man1/$binary.1.gz" "$doc/copyright" "$doc/changelog.gz"

    local script
    for script in postinst prerm postrm; do
        install -m 0755 "$here/$short/$script" "$root/DEBIAN/$script"
    done
    echo "/etc/proxmox-monitor/$short.toml" >"$root/DEBIAN/conffiles"
    (cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
        xargs -0 md5sum) >"$root/DEBIAN/md5sums"
    # As dpkg-gencontrol counts it: KiB per file, rounded up, and 1 per directory.
    local size
    size=$(cd "$root" && find . -path ./DEBIAN -prune -o -printf '%y %s\n' |
        awk '$1 == "f" { kib += int(($2 + 1023) / 1024); next } { kib += 1 } END { print kib }')
    {
        echo "Package: $package"
        echo "Version: $version"
        echo "Architecture: amd64"
        echo "Maintainer: $MAINTAINER"
        echo "Installed-Size: $size"
        echo "Depends: $depends"
        [[ -n $suggests ]] && echo "Suggests: $suggests"
        echo "Section: admin"
        echo "Priority: optional"
        echo "Description: $synopsis"
        sed 's/^$/./; s/^/ /' <<<"$description"
    } >"$root/DEBIAN/control"
    chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"
    find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
    local deb=$out_dir/${package}_${version}_amd64.deb
    dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
    echo "$deb ($(stat -c %s "$deb") bytes)"
}

# The conffile for agent or server: the example of packaging/, except that the agent's
# server_url and token are commented out (the postinst starts the agent once both are set).
conffile() {
    case $1 in
        agent) sed -e 's/^server_url = /#server_url = /' -e 's/^token = /#token = /' \
            "$repo/packaging/agent.toml.example" ;;
        server) cat "$repo/packaging/server.toml.example" ;;
    esac
}

build proxmox-monitor-agent \
    "init-system-helpers (>= 1.54~)" \
    "smartmontools, zfsutils-linux" \
    "Proxmox Monitor agent for Proxmox VE nodes" \
    "The agent reads the node's own files (/proc, /sys, /etc/pve, ZFS kstats) and
the output of zpool and pvesm, and pushes samples of the node, its guests,
pools and storages over one WebSocket to the Proxmox Monitor server. It never
calls the Proxmox API, costs the node almost nothing, and spools samples to
disk while the server is unreachable.

The agent is enabled on installation and starts once server_url and token are
set in /etc/proxmox-monitor/agent.toml." \
    ""
build proxmox-monitor-server \
    "adduser, init-system-helpers (>= 1.54~)" \
    "prometheus" \
    "Proxmox Monitor server: metrics store and dashboard" \
    "The server accepts the agents of Proxmox VE nodes, authenticates each host by
its token, stores every sample in an embedded SQLite database with tiered
retention, and serves a dashboard, a JSON API and Prometheus metrics on one
port. It runs as the system user proxmox-monitor.

The package ships a Grafana dashboard for the Prometheus metrics in
/usr/share/doc/proxmox-monitor-server/examples, and the static agent in
/usr/lib/proxmox-monitor, which the server hands out to the nodes through its
one-line installer (/install/agent.sh)." \
    "SQLite (public domain)"
