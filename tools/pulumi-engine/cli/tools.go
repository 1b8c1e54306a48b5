//go:build tools

// Package cli pins the Pulumi CLI (github.com/pulumi/pulumi/pkg/v3/cmd/pulumi) and the Pulumi YAML
// language host (github.com/pulumi/pulumi-yaml), so that build.sh builds both from this module's go.sum.
package cli

import (
	_ "github.com/pulumi/pulumi-yaml/cmd/pulumi-language-yaml"
	_ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
)
