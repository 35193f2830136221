#!/usr/bin/env bash
# Build the static, stripped sremote-endpoint for this machine's target.
#
#   deploy/build-endpoint.sh            # prints the binary's path, size and sha256
#
# RUSTFLAGS apply only to the target (not to build scripts/proc-macros) because
# --target is given explicitly. The `endpoint` profile (root Cargo.toml) adds LTO and strip.
set -euo pipefail
cd "$(dirname "$0")/.."

target="$(rustc -vV | sed -n 's/host: //p')"
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --profile endpoint -p sremote-endpoint --bin sremote-endpoint --target "$target"

target_dir="${CARGO_TARGET_DIR:-target}"
bin="$target_dir/$target/endpoint/sremote-endpoint"
[ -x "$bin" ] || { echo "build-endpoint: $bin was not produced" >&2; exit 1; }

size=$(stat -c %s "$bin" 2>/dev/null || stat -f %z "$bin")
if command -v sha256sum >/dev/null; then sha=$(sha256sum "$bin" | cut -d' ' -f1); else sha=$(shasum -a 256 "$bin" | cut -d' ' -f1); fi

# A static binary: ldd says so (glibc: "not a dynamic executable", musl: "statically linked").
if command -v ldd >/dev/null; then
    ldd_out="$(ldd "$bin" 2>&1 || true)"
    case "$ldd_out" in
        *"not a dynamic executable"*|*"statically linked"*) ;;
        *) echo "build-endpoint: $bin is not static:" >&2; echo "$ldd_out" >&2; exit 1 ;;
    esac
fi
max=3000000  # the issue: ≤ 3 MB
if [ "$size" -gt "$max" ]; then
    echo "build-endpoint: $bin is $size bytes, over the 3 MB budget" >&2
    exit 1
fi

echo "path:   $bin"
echo "size:   $size bytes ($(( (size + 1023) / 1024 )) KiB)"
echo "sha256: $sha"
echo "static: yes"
