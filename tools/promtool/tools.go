//go:build tools

// Package promtool pins Prometheus's promtool (cmd/promtool), which checks the rendered alerting rules
// and runs their unit tests, so that build.sh can build it from this module's go.sum.
package promtool

import _ "github.com/prometheus/prometheus/cmd/promtool"
