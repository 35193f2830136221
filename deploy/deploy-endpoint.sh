#!/usr/bin/env bash
# Install the sremote endpoint on HOST by hand with plain ssh — what
# `sremote bootstrap HOST` (RemoteClient::do_bootstrap_install) does, for hosts where you
# want to do it yourself.
#
# usage: deploy/deploy-endpoint.sh [-F ssh_config] HOST [ENDPOINT_BINARY]
#   ENDPOINT_BINARY defaults to a fresh static build (deploy/build-endpoint.sh).
# Installs ~/.sremote/bin/sremote-endpoint-<version> (SHA-256 checked on the host),
# creates ~/.sremote/{bin,tmp,jobs,modules} with mode 0700. Nothing but fixed names
# reaches the remote shell.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ssh_opts=()
if [ "${1:-}" = "-F" ]; then ssh_opts=(-F "$2"); shift 2; fi
host=${1:?usage: deploy-endpoint.sh [-F ssh_config] HOST [ENDPOINT_BINARY]}
bin=${2:-}
if [ -z "$bin" ]; then
  bin=$("$here/build-endpoint.sh" | sed -n 's/^path: *//p')
fi
[ -x "$bin" ] || { echo "deploy-endpoint: $bin is not an executable endpoint" >&2; exit 2; }
version=$("$bin" version --json | sed -n 's/.*"version": *"\([^"]*\)".*/\1/p')
[ -n "$version" ] || { echo "deploy-endpoint: cannot read the version of $bin" >&2; exit 2; }
# The version becomes part of a file name inside the remote command lines below.
case $version in
  *[!A-Za-z0-9._+-]*|[.-]*) echo "deploy-endpoint: $bin reports the version \"$version\", not one of [A-Za-z0-9._+-]" >&2; exit 2 ;;
esac
sha=$(sha256sum "$bin" | cut -c1-64)
name="sremote-endpoint-$version"
tmp=".sremote/bin/.$name.deploy-$$"
echo "deploy-endpoint: $bin ($version, sha256 ${sha:0:16}…) -> $host:~/.sremote/bin/$name" >&2
# Everything relative to the remote $HOME (as sremote itself does), through plain ssh.
ssh "${ssh_opts[@]}" -- "$host" 'cd "$HOME" && umask 077 && mkdir -p .sremote/bin .sremote/tmp .sremote/jobs .sremote/modules && chmod 700 .sremote .sremote/bin .sremote/tmp .sremote/jobs .sremote/modules'
ssh "${ssh_opts[@]}" -- "$host" "cd \"\$HOME\" && cat > '$tmp'" < "$bin"
ssh "${ssh_opts[@]}" -- "$host" "cd \"\$HOME\" && got=\$(sha256sum '$tmp' | cut -c1-64); if [ \"\$got\" != '$sha' ]; then rm -f '$tmp'; echo 'SHA-256 mismatch after upload' >&2; exit 65; fi; chmod 755 '$tmp' && mv -f '$tmp' '.sremote/bin/$name'"
echo "deploy-endpoint: installed; check with: sremote bootstrap $host   (it should push nothing)" >&2
