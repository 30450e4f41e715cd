#!/usr/bin/env bash
# Builds the tollgate Debian package and prints its path.
#
#   packaging/build-deb.sh            release build (cargo build --release -p tollgate
#                                     --features live-capture), then the package
#   packaging/build-deb.sh --no-build package the release binary already built
#   packaging/build-deb.sh --fast     quicker, larger compression (trying the packaging out)
#
# Steps: build the binary; make from it (`tollgate generate ...`) the man pages, the shell
# completions and /etc/tollgate/tollgate.toml (the commented default with the package's state
# directory) into packaging/generated/; run cargo deb. Needs cargo-deb
# (`cargo install cargo-deb --locked`) and libpcap-dev (live capture). See packaging/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=1
deb_args=()
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    --fast) deb_args+=(--fast) ;;
    *) echo "usage: $0 [--no-build] [--fast]" >&2; exit 2 ;;
  esac
done

command -v cargo-deb >/dev/null || { echo "cargo-deb is missing: cargo install cargo-deb --locked" >&2; exit 1; }

target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin="$target_dir/release/tollgate"
if [ "$build" = 1 ]; then
  echo "building $bin" >&2
  cargo build --release --locked -p tollgate --features live-capture >&2
fi
[ -x "$bin" ] || { echo "no release binary at $bin (run without --no-build)" >&2; exit 1; }

gen="$root/packaging/generated"
rm -rf "$gen"
mkdir -p "$gen/doc"
"$bin" generate man "$gen/man" >/dev/null
"$bin" generate completions "$gen/completions" >/dev/null
"$bin" generate config --state-dir /var/lib/tollgate >"$gen/tollgate.toml"
# What a packaged server starts with must be a valid configuration.
"$bin" config check "$gen/tollgate.toml" >/dev/null
cp README.md "$gen/doc/README.md"
cp packaging/README.md "$gen/doc/PACKAGING.md"
# Hook for the configuration reference (issue 13 item 7): when the binary has
# `tollgate config reference`, its Markdown goes into the package beside the README, and a
# tollgate.toml(5) man page when the binary makes one (`tollgate generate man` writes any
# section-5 page into the same directory: add it to the assets in crates/tollgate/Cargo.toml).
if "$bin" config reference >"$gen/doc/CONFIG.md" 2>/dev/null; then
  echo "configuration reference: included as /usr/share/doc/tollgate/CONFIG.md" >&2
else
  rm -f "$gen/doc/CONFIG.md"
  echo "configuration reference: this binary has no \`config reference\`; not included" >&2
fi

# The binary is already built with the package's features: cargo deb only packages it,
# stripped (the release profile keeps line tables for backtraces; lintian refuses them here).
cargo deb -p tollgate --no-build --strip --locked "${deb_args[@]}" --output "$target_dir/debian/" >&2
deb=$(ls -t "$target_dir"/debian/tollgate_*.deb | head -n 1)
echo "$deb"
