//go:build tools

// Package tools pins crane, go-containerregistry's registry client, for pushing the images
// (and, in the tests, serving a registry on 127.0.0.1).
package tools

import (
	_ "github.com/google/go-containerregistry/cmd/crane"
)
