#!/usr/bin/env bash
# Builds the etcd server from the Go module proxy into <outdir>/etcd, as the storage behind the
# test kube-apiserver. Called by `node bin/setup.js --test` through tools.json and cached per
# version outside the clone, like kube-apiserver (see build-kube-apiserver.sh for why).
#
#   test/kube/build-etcd.sh <outdir> <version>
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 <outdir> <version, e.g. v3.7.3>" >&2
  exit 2
fi
outdir=$1
version=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/etcd" && pwd)

pinned=$(cd "$here" && go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
if [[ "$pinned" != "$version" ]]; then
  echo "build-etcd: asked for $version but test/kube/etcd/go.mod pins go.etcd.io/etcd/server/v3 $pinned." >&2
  echo "Update tools.json or test/kube/etcd/go.mod ('go get go.etcd.io/etcd/server/v3@VERSION && go mod tidy') so they agree." >&2
  exit 1
fi

mkdir -p "$outdir"
cd "$here"
CGO_ENABLED=0 GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=readonly" go build -trimpath -ldflags "-s -w" \
  -o "$outdir/etcd.partial" go.etcd.io/etcd/server/v3
mv "$outdir/etcd.partial" "$outdir/etcd"
"$outdir/etcd" --version
