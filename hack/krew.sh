#!/usr/bin/env bash
# The kubectl plugin archive and its krew manifest:
#   hack/krew.sh [--version V] [--out DIR] [--uri-base URL]
# Writes DIR/kubectl-unyo_v<V>_linux_amd64.tar.gz (the `unyo` binary as kubectl-unyo, and a
# LICENSE note) and DIR/unyo.yaml (packaging/krew/unyo.yaml with the version, the archive's
# address under URL and its sha256), and prints the manifest's path. Install from them with
#   kubectl krew install --manifest=DIR/unyo.yaml --archive=DIR/kubectl-unyo_v<V>_linux_amd64.tar.gz
# Takes $UNYO_BINARIES/unyo when UNYO_BINARIES is set (the tests), else builds the release binary.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. hack/release-lib.sh
release_args krew "${CARGO_TARGET_DIR:-target}/krew" "--uri-base" "$@"
base=${flag[--uri-base]:-https://unyo.dev/releases}
bins=$(release_binaries -p unyo-cli --bin unyo)
stage=$(mktemp -d "${TMPDIR:-/tmp}/unyo-krew.XXXXXX")
trap 'rm -rf "$stage"' EXIT
install -m 0755 "$bins/unyo" "$stage/kubectl-unyo"
strip --strip-unneeded "$stage/kubectl-unyo"
printf 'unyo is licensed under the Apache License, Version 2.0\n(https://www.apache.org/licenses/LICENSE-2.0).\n' >"$stage/LICENSE"
archive="kubectl-unyo_v${version}_linux_amd64.tar.gz"
mkdir -p "$out"
created=${epoch:-0}
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$created" -C "$stage" \
  -cf - kubectl-unyo LICENSE | gzip -9n >"$out/$archive"
sha=$(sha256sum "$out/$archive" | cut -d' ' -f1)
sed -e "s|@VERSION@|$version|" -e "s|@URI@|$base/v$version/$archive|" -e "s|@SHA256@|$sha|" \
  packaging/krew/unyo.yaml >"$out/unyo.yaml"
echo "$out/unyo.yaml"
