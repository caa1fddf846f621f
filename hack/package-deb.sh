#!/usr/bin/env bash
# The agent for Linux hosts as a Debian package, built with dpkg-deb (no debhelper needed):
#   hack/package-deb.sh [--binary PATH] [--version V] [--out DIR]
# Without --binary it takes $UNYO_BINARIES/unyo-agent when UNYO_BINARIES names a directory (the
# tests use their debug build), else it builds the release agent. Prints the path of
# unyo-agent_<version>_amd64.deb. Contents: /usr/bin/unyo-agent, the systemd unit, /etc/default/unyo-agent,
# /etc/unyo/agent.yaml (a host policy allowing nothing beyond facts and checks), /var/lib/unyo-agent.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. hack/release-lib.sh
release_args package-deb "${CARGO_TARGET_DIR:-target}/deb" "--binary" "$@"
binary=${flag[--binary]:-}
[ -n "$binary" ] || binary="$(release_binaries -p unyo-agent --bin unyo-agent)/unyo-agent"
src=packaging/deb
stage=$(mktemp -d "${TMPDIR:-/tmp}/unyo-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
doc="$stage/usr/share/doc/unyo-agent"
install -d "$stage/DEBIAN" "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/etc/default" \
  "$stage/etc/unyo" "$stage/var/lib/unyo-agent" "$doc"
install -m 0755 "$binary" "$stage/usr/bin/unyo-agent"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$stage/usr/bin/unyo-agent"
install -m 0644 "$src/unyo-agent.service" "$stage/lib/systemd/system/unyo-agent.service"
install -m 0644 "$src/default" "$stage/etc/default/unyo-agent"
install -m 0600 "$src/agent.yaml" "$stage/etc/unyo/agent.yaml"
chmod 0700 "$stage/var/lib/unyo-agent"
install -m 0644 "$src/copyright" "$doc/copyright"
printf 'unyo-agent (%s) unstable; urgency=medium\n\n  * Release %s.\n\n -- unyo developers <dev@unyo.dev>  %s\n' \
  "$version" "$version" "$(date -R -d @"${epoch:-$(date +%s)}")" \
  | gzip -9n >"$doc/changelog.gz"
for s in postinst prerm postrm; do install -m 0755 "$src/$s" "$stage/DEBIAN/$s"; done
printf '/etc/default/unyo-agent\n/etc/unyo/agent.yaml\n' >"$stage/DEBIAN/conffiles"
# The shared libraries the binary needs, as the packages that hold them (with the versions here).
depends=$(ldd "$stage/usr/bin/unyo-agent" | awk '/=>/ { print $3 }' | while read -r lib; do
  dpkg -S "$(readlink -f "$lib")" 2>/dev/null || dpkg -S "$lib" 2>/dev/null || true
done | cut -d: -f1 | sort -u | while read -r pkg; do
  printf '%s (>= %s)\n' "$pkg" "$(dpkg-query -W -f='${Version}' "$pkg" | cut -d- -f1)"
done | paste -sd, | sed 's/,/, /g')
cat >"$stage/DEBIAN/control" <<CONTROL
Package: unyo-agent
Version: $version
Architecture: amd64
Maintainer: unyo developers <dev@unyo.dev>
Installed-Size: $(du -sk --exclude=DEBIAN "$stage" | cut -f1)
Depends: $depends
Recommends: restic, clamav, chrony
Section: admin
Priority: optional
Homepage: https://unyo.dev
Description: host agent of the unyo operations and maintenance system
 unyo-agent reports a server's facts (its configuration ledger), runs the
 checks of its monitoring policies and the virus scans, backups and patch
 installs its policies ask for, within the limits of the host's own policy
 (/etc/unyo/agent.yaml), and writes the results to the unyo control plane.
CONTROL
(cd "$stage" && find usr lib -type f -exec md5sum {} + >DEBIAN/md5sums)
mkdir -p "$out"
deb="$out/unyo-agent_${version}_amd64.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
