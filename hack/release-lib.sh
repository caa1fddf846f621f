# Sourced by hack/package-deb.sh, hack/image.sh and hack/krew.sh: the flags they share and where
# their binaries come from. Run from the repository root.

# release_args NAME DEFAULT_OUT "EXTRA FLAGS" ARGS...: sets $version (--version, default the
# workspace's), $out (--out, default DEFAULT_OUT) and, for each flag listed in EXTRA FLAGS (e.g.
# "--binary"), its value in ${flag[--binary]}. Any other flag is refused, naming NAME. Sets
# $epoch too: the time the artifacts carry, $SOURCE_DATE_EPOCH or the last commit's (empty
# outside a git checkout; each script says what it takes then).
release_args() {
  local name=$1 extra=" $3 "
  out=$2
  shift 3
  version=""
  declare -gA flag=()
  while [ $# -gt 0 ]; do
    case $1 in
      --version) version=${2:-} ;;
      --out) out=${2:-} ;;
      *) [[ $extra == *" $1 "* ]] || { echo "$name: unknown flag $1" >&2; exit 2; }
         flag[$1]=${2:-} ;;
    esac
    shift 2 || { echo "$name: $1 needs a value" >&2; exit 2; }
  done
  [ -n "$version" ] || version=$(awk -F'"' '/^version = / { print $2; exit }' Cargo.toml)
  epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || true)}
}

# release_binaries CARGO-ARGS...: prints the directory holding the binaries — $UNYO_BINARIES when
# set (the tests give their debug build), else after a release build with CARGO-ARGS.
release_binaries() {
  if [ -n "${UNYO_BINARIES:-}" ]; then
    echo "$UNYO_BINARIES"
  else
    cargo build -q --release --locked "$@" >&2
    echo "${CARGO_TARGET_DIR:-target}/release"
  fi
}
