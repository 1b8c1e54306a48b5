// Package operatorcrds only pins github.com/prometheus-operator/prometheus-operator, whose module zip
// carries the Prometheus Operator CRDs (example/prometheus-operator-crd) that the cluster tier installs.
package operatorcrds
