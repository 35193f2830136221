#!/usr/bin/env bash
# Install the sremote endpoint on HOST by hand with plain ssh — what
# `sremote bootstrap HOST` (RemoteClient::do_bootstrap_install) does, for hosts where you
# want to do it yourself.
#
# usage: deploy/deploy-endpoint.sh [-F ssh_config] [-d SREMOTE_DIR] [-t TMP_DIR] HOST [ENDPOINT_BINARY]
#   -d  the sremote dir on the host (default ~/.sremote; relative: to the home directory)
#   -t  the scratch dir for requests, responses and jobs (default SREMOTE_DIR/tmp;
#       relative: to the home directory, or inside SREMOTE_DIR when it starts with it)
#   ENDPOINT_BINARY defaults to `sremote endpoint extract` when sremote is on PATH, else
#   a fresh static build (deploy/build-endpoint.sh).
# Installs SREMOTE_DIR/bin/sremote-endpoint-<version> (SHA-256 checked on the host),
# creates SREMOTE_DIR/{bin,tmp,jobs,modules} and TMP_DIR with mode 0700, and with -d or -t
# writes ~/.sremote/.location (JSON: sremote, relative_tmp or absolute_tmp) so that the
# endpoint and every client find them.
#
# The host's login shell only ever sees fixed command lines (`/bin/sh -s`, `cat > NAME`
# with a fixed NAME): the directories travel inside the script /bin/sh reads on stdin,
# single-quoted, so any login shell (sh, bash, tcsh, fish) and any directory name work.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
usage="usage: deploy-endpoint.sh [-F ssh_config] [-d SREMOTE_DIR] [-t TMP_DIR] HOST [ENDPOINT_BINARY]"
ssh_opts=()
dir=""
tmpdir=""
while getopts "F:d:t:" opt; do
  case $opt in
    F) ssh_opts=(-F "$OPTARG") ;;
    d) dir=$OPTARG ;;
    t) tmpdir=$OPTARG ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
host=${1:?$usage}
bin=${2:-}
if [ -z "$bin" ]; then
  if command -v sremote >/dev/null 2>&1; then
    out=$(mktemp -d)
    trap 'rm -rf -- "$out"' EXIT
    sremote endpoint extract "$out" >&2
    bin=$(ls -- "$out"/sremote-endpoint-*)
  else
    bin=$("$here/build-endpoint.sh" | sed -n 's/^path: *//p')
  fi
fi
[ -x "$bin" ] || { echo "deploy-endpoint: $bin is not an executable endpoint" >&2; exit 2; }
version=$("$bin" version --json | sed -n 's/.*"version": *"\([^"]*\)".*/\1/p')
[ -n "$version" ] || { echo "deploy-endpoint: cannot read the version of $bin" >&2; exit 2; }
case $version in
  *[!A-Za-z0-9._+-]*|[.-]*) echo "deploy-endpoint: $bin reports the version \"$version\", not one of [A-Za-z0-9._+-]" >&2; exit 2 ;;
esac
sha=$(sha256sum "$bin" | cut -c1-64)
name="sremote-endpoint-$version"

# Single-quote for /bin/sh: ' becomes '\''.
q() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
# A JSON string (the .location file is JSON).
j() {
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\t'/\\t}
  printf '"%s"' "$s"
}
location=""
if [ -n "$dir" ] || [ -n "$tmpdir" ]; then
  d=${dir:-.sremote}
  location="{\"sremote\": $(j "$d")"
  if [ -n "$tmpdir" ]; then
    case $tmpdir in
      "$d"/*) location="$location, \"relative_tmp\": $(j "${tmpdir#"$d"/}")" ;;
      *) location="$location, \"absolute_tmp\": $(j "$tmpdir")" ;;
    esac
  fi
  location="$location}"
fi

upload=".sremote-deploy.$$.part"
echo "deploy-endpoint: $bin ($version, sha256 ${sha:0:16}…) -> $host:${dir:-~/.sremote}/bin/$name" >&2
ssh "${ssh_opts[@]}" -- "$host" "cd \"\$HOME\" && cat > $upload" < "$bin"
ssh "${ssh_opts[@]}" -- "$host" /bin/sh -s <<EOF
set -e
cd "\$HOME"
umask 077
up=$upload
d=$(q "${dir:-.sremote}")
t=$(q "$tmpdir")
[ -n "\$t" ] || t="\$d/tmp"
fail() { rm -f -- "\$up"; echo "deploy-endpoint: \$1" >&2; exit 65; }
for sub in "" /bin /tmp /jobs /modules; do
  mkdir -p -- "\$d\$sub" && chmod 700 -- "\$d\$sub" || fail "cannot create \$d\$sub"
done
mkdir -p -- "\$t" && chmod 700 -- "\$t" || fail "cannot create \$t"
got=\$(sha256sum -- "\$up" | cut -c1-64)
[ "\$got" = $(q "$sha") ] || fail "SHA-256 mismatch after upload"
chmod 755 -- "\$up" && mv -f -- "\$up" "\$d/bin/$name" || fail "cannot move the endpoint into \$d/bin"
loc=$(q "$location")
if [ -n "\$loc" ]; then
  mkdir -p -- .sremote && chmod 700 -- .sremote
  printf '%s\n' "\$loc" > ".sremote/.location.\$\$" && mv -f -- ".sremote/.location.\$\$" .sremote/.location \
    || fail "cannot write ~/.sremote/.location"
fi
EOF
echo "deploy-endpoint: installed; check with: sremote bootstrap $host   (it should push nothing)" >&2
