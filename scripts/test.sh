#!/usr/bin/env bash
# The test command: installs the real peers the tests need (if missing), then runs every test
# of the workspace, unit to end-to-end (dig/kdig, Kamailio + SIPp). The end-to-end tests bind
# port 53 on 127.0.53.x and give Kamailio a private resolv.conf, so they need root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
# The probe's libpcap interface capture (feature live-capture; libpcap-dev is installed above)
# is built and tested too: crates/tollgate/tests/probe_interface.rs captures on a real veth.
# --no-fail-fast: every failing test binary is reported in one run, not only the first.
cargo test --workspace --locked --no-fail-fast --features tollgate/live-capture "$@"
