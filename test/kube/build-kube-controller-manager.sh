#!/usr/bin/env bash
# Builds kube-controller-manager for the end-to-end tests (tools.json): see build-kube-command.sh.
#
#   test/kube/build-kube-controller-manager.sh <outdir> <version>
exec bash "$(dirname "${BASH_SOURCE[0]}")/build-kube-command.sh" "$@" kube-controller-manager
