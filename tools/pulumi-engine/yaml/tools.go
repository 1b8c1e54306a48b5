//go:build tools

// Package yaml pins the Pulumi YAML language host (github.com/pulumi/pulumi-yaml). It is a module of
// its own because pulumi-yaml v1.25.0 builds only against the pulumi pkg/sdk it requires (v3.206.0),
// not the CLI's v3.274.1; the language host speaks the engine's gRPC protocol, which is stable.
package yaml

import _ "github.com/pulumi/pulumi-yaml/cmd/pulumi-language-yaml"
