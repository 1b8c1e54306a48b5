//go:build tools

// Package kwok pins sigs.k8s.io/kwok's controller (cmd/kwok), which fakes nodes and drives pod
// status through the API, so that build.sh can build it from this module's go.sum.
package kwok

import _ "sigs.k8s.io/kwok/cmd/kwok"
