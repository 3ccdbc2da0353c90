#!/usr/bin/env bash
# Builds kube-apiserver for the end-to-end tests (tools.json): see build-kube-command.sh.
#
#   test/kube/build-kube-apiserver.sh <outdir> <version>
exec bash "$(dirname "${BASH_SOURCE[0]}")/build-kube-command.sh" "$@" kube-apiserver
