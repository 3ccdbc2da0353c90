#!/usr/bin/env bash
# Builds kube-apiserver from the Go module proxy into <outdir>/kube-apiserver, for the end-to-end
# tests that need a real API server (admission webhooks). Called by `node bin/setup.js --test`
# through tools.json; the result is cached per version outside the clone, so this runs once per
# machine (~10+ minutes on 2 cores; with Go's build cache warm it is mostly linking).
#
#   test/kube/build-kube-apiserver.sh <outdir> <version>
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 <outdir> <version, e.g. v1.37.2>" >&2
  exit 2
fi
outdir=$1
version=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# The module's go.mod/go.sum pin one version, with checksums; building another needs them updated
# (require + every k8s.io/* replace), not a silent re-resolve here.
pinned=$(cd "$here" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
if [[ "$pinned" != "$version" ]]; then
  echo "build-kube-apiserver: asked for $version but test/kube/go.mod pins k8s.io/kubernetes $pinned." >&2
  echo "Update tools.json or test/kube/go.mod (require and the k8s.io/* v0.x replaces, then 'go mod tidy') so they agree." >&2
  exit 1
fi

if [[ ! $version =~ ^v([0-9]+)\.([0-9]+)\. ]]; then
  echo "build-kube-apiserver: version $version is not of the form vMAJOR.MINOR.PATCH" >&2
  exit 2
fi
major=${BASH_REMATCH[1]}
minor=${BASH_REMATCH[2]}

# The same version stamps Kubernetes' own build sets, so `kube-apiserver --version` and /version
# report the real release instead of v0.0.0-master.
ldflags="-s -w"
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done

mkdir -p "$outdir"
cd "$here"
# Write to a temporary name first: an interrupted build must not leave a binary setup.js would trust.
CGO_ENABLED=0 GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=readonly" go build -trimpath -ldflags "$ldflags" \
  -o "$outdir/kube-apiserver.partial" k8s.io/kubernetes/cmd/kube-apiserver
mv "$outdir/kube-apiserver.partial" "$outdir/kube-apiserver"
"$outdir/kube-apiserver" --version
