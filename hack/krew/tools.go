//go:build tools

// Package tools pins krew (the kubectl plugin manager) and its manifest validator, which the
// tests run on the plugin manifest (hack/krew.sh) — built by hack/go-tool.sh.
package tools

import (
	_ "sigs.k8s.io/krew/cmd/krew"
	_ "sigs.k8s.io/krew/cmd/validate-krew-manifest"
)
