#!/usr/bin/env bash
# The container images of unyo, built without a container engine: each is an OCI image layout
# written as a tar archive (hack/oci, go-containerregistry), on a distroless-style base made
# from Debian's own packages (libc6, libgcc-s1 — what the Rust binaries link), run as the
# unprivileged user 65532. Containerfile builds the same images where a container engine exists.
#
#   hack/image.sh [--version V] [--out DIR]
#
# Prints the paths of DIR/unyo-controller-<V>.oci.tar (entrypoint unyo-controller) and
# DIR/unyo-<V>.oci.tar (the `unyo` command line, with Noto Sans CJK for the Japanese PDF
# reports of the report CronJob); each image is also left as an OCI layout directory beside its
# archive (DIR/unyo-controller-<V>/, what `crane push` and `skopeo copy oci:` read). Builds the release binaries, unless UNYO_BINARIES names a
# directory that holds unyo-controller and unyo already (the tests use their debug build).
# Debian packages are fetched with apt-get download and kept in ~/.cache/unyo/debs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. hack/release-lib.sh
release_args image "${CARGO_TARGET_DIR:-target}/images" "" "$@"
bins=$(release_binaries -p unyo-controller -p unyo-cli)
oci=$(hack/go-tool.sh oci .)
debs="${XDG_CACHE_HOME:-$HOME/.cache}/unyo/debs"
stage=$(mktemp -d "${TMPDIR:-/tmp}/unyo-image.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$out" "$debs"
created=${epoch:-0}
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)

# Debian package PKG at the version this machine's apt knows, unpacked into DIR.
unpack() {
  local pkg=$1 dir=$2 ver file
  ver=$(apt-cache policy "$pkg" | awk '/Candidate:/ { print $2 }')
  if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
    apt-get update -qq >&2  # no package lists yet on this machine
    ver=$(apt-cache policy "$pkg" | awk '/Candidate:/ { print $2 }')
  fi
  file=$(find "$debs" -name "${pkg}_${ver//:/%3a}_*.deb" | head -1)
  if [ -z "$file" ]; then
    (cd "$debs" && apt-get download -q -o APT::Sandbox::User=root "$pkg=$ver" >&2)
    file=$(find "$debs" -name "${pkg}_${ver//:/%3a}_*.deb" | head -1)
  fi
  dpkg-deb -x "$file" "$dir"
}

# The base: the C library and libgcc, users root and nonroot (65532), /tmp.
base="$stage/base"
mkdir -p "$base/etc" "$base/tmp"
unpack libc6 "$base"
unpack libgcc-s1 "$base"
rm -rf "$base/usr/share/doc" "$base/usr/share/lintian" "$base/usr/lib/x86_64-linux-gnu/gconv"
chmod 1777 "$base/tmp"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/tmp:/sbin/nologin\n' >"$base/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$base/etc/group"
printf 'hosts: files dns\n' >"$base/etc/nsswitch.conf"

# Fonts for the reports (only the two faces the PDF uses).
fonts="$stage/fonts"
unpack fonts-noto-cjk "$stage/noto"
mkdir -p "$fonts/usr/share/fonts/opentype/noto"
cp "$stage/noto/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc" \
  "$stage/noto/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc" "$fonts/usr/share/fonts/opentype/noto/"

# image NAME BINARY [MORE LAYER DIRS]: one image whose entrypoint is /usr/bin/BINARY.
image() {
  local name=$1 binary=$2 app="$stage/$1"
  shift 2
  install -D -m 0755 "$bins/$binary" "$app/usr/bin/$binary"
  strip --strip-unneeded "$app/usr/bin/$binary"
  local layers=(-layer "$base")
  for l in "$@"; do layers+=(-layer "$l"); done
  "$oci" "${layers[@]}" -layer "$app" \
    -entrypoint "/usr/bin/$binary" -user 65532:65532 -workdir / \
    -env PATH=/usr/bin:/bin -env HOME=/tmp -created "$created" \
    -ref "$name:$version" \
    -label "org.opencontainers.image.title=$name" \
    -label "org.opencontainers.image.version=$version" \
    -label "org.opencontainers.image.revision=$revision" \
    -label "org.opencontainers.image.licenses=Apache-2.0" \
    -label "org.opencontainers.image.source=https://unyo.dev" \
    -label "org.opencontainers.image.description=unyo: $binary" \
    -out "$out/$name-$version.oci.tar" -dir "$out/$name-$version"
  echo "$out/$name-$version.oci.tar"
}

image unyo-controller unyo-controller
image unyo unyo "$fonts"
