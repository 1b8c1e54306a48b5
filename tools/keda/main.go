// Command keda-backlog measures a ScaledObject's backlog with KEDA's own code, so that the tests check
// the ScaledObject that we render against what KEDA would compute, not against our reading of its docs.
//
// It reads one JSON document on stdin:
//
//	{"scaledObject": {...}, "authParams": {"password": "..."}, "metadataOverrides": {"address": "127.0.0.1:6399"}}
//
// and, like KEDA's operator and metrics server, validates the ScaledObject (the checks of its admission
// webhook that need no cluster), builds each trigger's scaler as KEDA's scalers builder does
// (pkg/scaling/scalers_builder.go, with the ScalerConfig that KEDA's scale handler builds): a "redis"
// trigger with scalers.NewRedisScaler(ctx, false, false, config), a "redis-sentinel" trigger with
// scalers.NewRedisScaler(ctx, false, true, config), which asks the Sentinels at its "addresses" for the
// master named "sentinelMaster" and reads the list there; any other type is refused. It reads each
// metric (GetMetricsAndActivity) and, when spec.advanced.scalingModifiers.formula is set, combines them
// with modifiers.HandleScalingModifiers and the formula compiled by
// kedav1alpha1.ValidateAndCompileScalingModifiers. It prints
//
//	{"triggers": {"<trigger name>": <value>}, "active": <any trigger active>,
//	 "composite": <formula value or null>, "compositeActive": <formula value > activationTarget, or null>}
//
// authParams stands in for the TriggerAuthentication's resolved parameters ("password", "username",
// "sentinelPassword", "ca", ...). metadataOverrides replaces (or adds) trigger metadata keys in every
// trigger: the rendered "address" or "addresses" are cluster DNS names, the test's Redis and Sentinels
// are on 127.0.0.1 (e.g. {"addresses": "127.0.0.1:26379,127.0.0.1:26380"}). Any error goes to stderr
// with exit status 1.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"k8s.io/metrics/pkg/apis/external_metrics"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	kjson "sigs.k8s.io/json"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	"github.com/kedacore/keda/v2/pkg/scalers"
	"github.com/kedacore/keda/v2/pkg/scalers/scalersconfig"
	"github.com/kedacore/keda/v2/pkg/scaling/cache"
	"github.com/kedacore/keda/v2/pkg/scaling/modifiers"
)

// KEDA's operator default for KEDA_HTTP_DEFAULT_TIMEOUT (3000 ms, cmd/operator/main.go).
const globalHTTPTimeout = 3000 * time.Millisecond

// The trigger types keda-backlog evaluates, and whether each goes through Sentinel: KEDA's scalers
// builder maps "redis" to NewRedisScaler(ctx, false, false, ...) and "redis-sentinel" to
// NewRedisScaler(ctx, false, true, ...).
var triggerTypes = map[string]bool{"redis": false, "redis-sentinel": true}

type input struct {
	ScaledObject      json.RawMessage   `json:"scaledObject"`
	AuthParams        map[string]string `json:"authParams"`
	MetadataOverrides map[string]string `json:"metadataOverrides"`
}

type output struct {
	Triggers        map[string]float64 `json:"triggers"`
	Active          bool               `json:"active"`
	Composite       *float64           `json:"composite"`
	CompositeActive *bool              `json:"compositeActive"`
}

// errorLog records what KEDA logs at error level: HandleScalingModifiers logs a failing formula and
// returns the metrics unchanged, so a logged error is the only sign of it.
type errorLog struct{ errs []error }

func (e *errorLog) logger() logr.Logger {
	stderr := funcr.New(func(prefix, args string) {
		fmt.Fprintf(os.Stderr, "keda-backlog: %s %s\n", prefix, args)
	}, funcr.Options{})
	return logr.New(&recordingSink{LogSink: stderr.GetSink(), log: e})
}

type recordingSink struct {
	logr.LogSink
	log *errorLog
}

func (s *recordingSink) Error(err error, msg string, kv ...any) {
	s.log.errs = append(s.log.errs, fmt.Errorf("%s: %w", msg, err))
	s.LogSink.Error(err, msg, kv...)
}

func (s *recordingSink) WithValues(kv ...any) logr.LogSink {
	return &recordingSink{LogSink: s.LogSink.WithValues(kv...), log: s.log}
}

func (s *recordingSink) WithName(name string) logr.LogSink {
	return &recordingSink{LogSink: s.LogSink.WithName(name), log: s.log}
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "keda-backlog: %v\n", err)
		os.Exit(1)
	}
}

func decodeScaledObject(raw json.RawMessage) (*kedav1alpha1.ScaledObject, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, errors.New("input has no scaledObject")
	}
	so := &kedav1alpha1.ScaledObject{}
	// Decoded as the API server decodes with strict field validation (case-sensitive, no unknown or
	// duplicate fields): a field that KEDA's types do not know would otherwise vanish without a word.
	strict, err := kjson.UnmarshalStrict(raw, so, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return nil, fmt.Errorf("scaledObject does not decode as a keda.sh/v1alpha1 ScaledObject: %w", err)
	}
	if len(strict) > 0 {
		return nil, fmt.Errorf("scaledObject has fields that a keda.sh/v1alpha1 ScaledObject does not: %w", errors.Join(strict...))
	}
	if so.APIVersion != "keda.sh/v1alpha1" || so.Kind != "ScaledObject" {
		return nil, fmt.Errorf("scaledObject is %s %s, expected keda.sh/v1alpha1 ScaledObject", so.APIVersion, so.Kind)
	}
	return so, nil
}

// validate runs the ScaledObject checks of KEDA's admission webhook (validateWorkload) that need no
// cluster: triggers, replica bounds, fallback and the scalingModifiers formula. It returns the compiled
// formula, or nil when there is none.
func validate(so *kedav1alpha1.ScaledObject) (*cache.ScalersCache, error) {
	if err := kedav1alpha1.ValidateTriggers(so.Spec.Triggers); err != nil {
		return nil, fmt.Errorf("triggers: %w", err)
	}
	if err := kedav1alpha1.CheckReplicaCountBoundsAreValid(so); err != nil {
		return nil, fmt.Errorf("replica counts: %w", err)
	}
	if err := kedav1alpha1.CheckFallbackValid(so); err != nil {
		return nil, fmt.Errorf("fallback: %w", err)
	}
	formulaCache := &cache.ScalersCache{ScaledObject: so}
	if so.Spec.Advanced != nil && so.Spec.Advanced.ScalingModifiers.Formula != "" {
		program, err := kedav1alpha1.ValidateAndCompileScalingModifiers(so)
		if err != nil {
			return nil, fmt.Errorf("scalingModifiers: %w", err)
		}
		formulaCache.CompiledFormula = program
	}
	return formulaCache, nil
}

func run(stdin io.Reader, stdout io.Writer) error {
	var in input
	dec := json.NewDecoder(stdin)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return fmt.Errorf("stdin is not the expected JSON: %w", err)
	}
	so, err := decodeScaledObject(in.ScaledObject)
	if err != nil {
		return err
	}
	errLog := &errorLog{}
	logger := errLog.logger()
	// KEDA's scalers log through controller-runtime's global logger.
	logf.SetLogger(logger)

	formulaCache, err := validate(so)
	if err != nil {
		return err
	}
	withTriggers, err := kedav1alpha1.AsDuckWithTriggers(so)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := output{Triggers: map[string]float64{}}
	var metrics []external_metrics.ExternalMetricValue
	pairs := map[string]string{}
	for i, trigger := range so.Spec.Triggers {
		sentinel, known := triggerTypes[trigger.Type]
		if !known {
			return fmt.Errorf("trigger %d (%q) has type %q; keda-backlog evaluates redis and redis-sentinel triggers only", i, trigger.Name, trigger.Type)
		}
		metadata := maps.Clone(trigger.Metadata)
		if metadata == nil {
			metadata = map[string]string{}
		}
		maps.Copy(metadata, in.MetadataOverrides)
		authParams := maps.Clone(in.AuthParams)
		if authParams == nil {
			authParams = map[string]string{}
		}
		// As KEDA's scale handler builds it (pkg/scaling/scalers_builder.go), with the TriggerAuthentication's
		// resolved parameters given as authParams and no container env.
		config := &scalersconfig.ScalerConfig{
			ScalableObjectName:      so.Name,
			ScalableObjectNamespace: so.Namespace,
			ScalableObjectType:      withTriggers.Kind,
			TriggerName:             trigger.Name,
			TriggerMetadata:         metadata,
			TriggerType:             trigger.Type,
			TriggerUseCachedMetrics: trigger.UseCachedMetrics,
			ResolvedEnv:             map[string]string{},
			AuthParams:              authParams,
			GlobalHTTPTimeout:       globalHTTPTimeout,
			TriggerIndex:            i,
			MetricType:              trigger.MetricType,
			ScaledObject:            withTriggers,
			TriggerUniqueKey:        fmt.Sprintf("%s-%s-%s-%d", withTriggers.Kind, so.Namespace, so.Name, i),
		}
		value, active, metric, err := measure(ctx, sentinel, config)
		if err != nil {
			return fmt.Errorf("trigger %d (%q): %w", i, trigger.Name, err)
		}
		name := trigger.Name
		if name == "" {
			name = strconv.Itoa(i)
		}
		if _, seen := out.Triggers[name]; seen {
			return fmt.Errorf("trigger %d: name %q is not unique", i, name)
		}
		out.Triggers[name] = value
		out.Active = out.Active || active
		metrics = append(metrics, metric...)
		pair, err := modifiers.GetPairTriggerAndMetric(so, metric[0].MetricName, trigger.Name)
		if err != nil {
			return fmt.Errorf("trigger %d: %w", i, err)
		}
		maps.Copy(pairs, pair)
	}

	if formulaCache.CompiledFormula != nil {
		logged := len(errLog.errs)
		combined := modifiers.HandleScalingModifiers(so, metrics, pairs, false, nil, formulaCache, logger)
		if len(errLog.errs) > logged {
			return errors.Join(errLog.errs[logged:]...)
		}
		if len(combined) != 1 || combined[0].MetricName != kedav1alpha1.CompositeMetricName {
			return fmt.Errorf("scalingModifiers returned %d metrics, expected the one %q", len(combined), kedav1alpha1.CompositeMetricName)
		}
		composite := combined[0].Value.AsApproximateFloat64()
		out.Composite = &composite
		// As the scale handler re-evaluates activity when a formula is used (pkg/scaling/scale_handler.go).
		activation := 0.0
		if target := so.Spec.Advanced.ScalingModifiers.ActivationTarget; target != "" {
			if activation, err = strconv.ParseFloat(target, 64); err != nil {
				return fmt.Errorf("scalingModifiers.activationTarget: %w", err)
			}
		}
		compositeActive := composite > activation
		out.CompositeActive = &compositeActive
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// measure builds the trigger's scaler (through the Sentinels when sentinel is true) and reads its one
// metric as the metrics server would.
func measure(ctx context.Context, sentinel bool, config *scalersconfig.ScalerConfig) (float64, bool, []external_metrics.ExternalMetricValue, error) {
	scaler, err := scalers.NewRedisScaler(ctx, false, sentinel, config)
	if err != nil {
		return 0, false, nil, err
	}
	defer func() { _ = scaler.Close(ctx) }()
	specs := scaler.GetMetricSpecForScaling(ctx)
	if len(specs) != 1 || specs[0].External == nil {
		return 0, false, nil, fmt.Errorf("expected one external metric spec, got %d", len(specs))
	}
	metrics, active, err := scaler.GetMetricsAndActivity(ctx, specs[0].External.Metric.Name)
	if err != nil {
		return 0, false, nil, err
	}
	if len(metrics) != 1 {
		return 0, false, nil, fmt.Errorf("expected one metric value, got %d", len(metrics))
	}
	return metrics[0].Value.AsApproximateFloat64(), active, metrics, nil
}
