//go:build tools

// Package cli pins the Pulumi CLI (github.com/pulumi/pulumi/pkg/v3/cmd/pulumi) so that
// build.sh can build it from this module's go.sum with -mod=readonly.
package cli

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
