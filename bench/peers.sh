#!/usr/bin/env bash
# Peer benchmark (see bench/peers.py): sremote vs an ssh echo floor, execnet and mitogen,
# over one throwaway loopback sshd; prints the report (`--write`: into BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
cargo build --release -q -p sremote-cli
exec python3 bench/peers.py "$@"
