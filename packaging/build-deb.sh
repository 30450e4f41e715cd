#!/usr/bin/env bash
# Builds the tollgate Debian package and prints its path.
#
#   packaging/build-deb.sh            release build (cargo build --release -p tollgate
#                                     --features live-capture), then the package
#   packaging/build-deb.sh --no-build package the release binary already built
#   packaging/build-deb.sh --fast     quicker, larger compression (trying the packaging out)
#   TOLLGATE_DEB_PROFILE=package-ci packaging/build-deb.sh
#                                     CI: the same package from a quicker optimised build
#                                     (profile package-ci, opt-level 1); what the package holds
#                                     and how it installs are the same
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
profile=${TOLLGATE_DEB_PROFILE:-release}
bin="$target_dir/$profile/tollgate"
if [ "$build" = 1 ]; then
  echo "building $bin" >&2
  cargo build --profile "$profile" --locked -p tollgate --features live-capture >&2
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
# The configuration reference (every option of every table), rendered from the binary: as
# Markdown beside the README and as the man page tollgate.toml(5).
"$bin" config reference --out "$gen/doc/CONFIG.md" >/dev/null
mkdir -p "$gen/man5"
"$bin" config reference --format man --out "$gen/man5/tollgate.toml.5" >/dev/null

# The binary is already built with the package's features: cargo deb only packages it,
# stripped (the release profile keeps line tables for backtraces; lintian refuses them here).
cargo deb -p tollgate --no-build --profile "$profile" --strip --locked "${deb_args[@]}" --output "$target_dir/debian/" >&2
deb=$(ls -t "$target_dir"/debian/tollgate_*.deb | head -n 1)
echo "$deb"
