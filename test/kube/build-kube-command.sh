#!/usr/bin/env bash
# Builds one command of k8s.io/kubernetes (kube-apiserver, kube-controller-manager) from the Go
# module proxy into <outdir>/<command>, for the end-to-end tests that need a real control plane
# (admission webhooks, controllers that create Pods). Called through the one-line
# build-<command>.sh scripts that tools.json names, by `node bin/setup.js --test`; the result is
# cached per version outside the clone, so this runs once per machine (~10+ minutes on 2 cores for
# the first; the second shares Go's build cache and is mostly the packages only it needs + linking).
#
#   test/kube/build-kube-command.sh <outdir> <version> <command>
set -euo pipefail

if [[ $# -ne 3 ]]; then
  echo "usage: $0 <outdir> <version, e.g. v1.37.2> <command, e.g. kube-apiserver>" >&2
  exit 2
fi
outdir=$1
version=$2
command=$3
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# The module's go.mod/go.sum pin one version, with checksums; building another needs them updated
# (require + every k8s.io/* replace), not a silent re-resolve here.
pinned=$(cd "$here" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
if [[ "$pinned" != "$version" ]]; then
  echo "build-$command: asked for $version but test/kube/go.mod pins k8s.io/kubernetes $pinned." >&2
  echo "Update tools.json or test/kube/go.mod (require and the k8s.io/* v0.x replaces, then 'go mod tidy') so they agree." >&2
  exit 1
fi

if [[ ! $version =~ ^v([0-9]+)\.([0-9]+)\. ]]; then
  echo "build-$command: version $version is not of the form vMAJOR.MINOR.PATCH" >&2
  exit 2
fi
major=${BASH_REMATCH[1]}
minor=${BASH_REMATCH[2]}

# The same version stamps Kubernetes' own build sets, so `<command> --version` and /version
# report the real release instead of v0.0.0-master.
ldflags="-s -w"
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done

mkdir -p "$outdir"
cd "$here"
# Write to a temporary name first: an interrupted build must not leave a binary setup.js would trust.
CGO_ENABLED=0 GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=readonly" go build -trimpath -ldflags "$ldflags" \
  -o "$outdir/$command.partial" "k8s.io/kubernetes/cmd/$command"
mv "$outdir/$command.partial" "$outdir/$command"
"$outdir/$command" --version
