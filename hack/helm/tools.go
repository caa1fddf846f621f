//go:build tools

// Package tools pins the Helm client this module builds (hack/go-tool.sh helm …).
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
