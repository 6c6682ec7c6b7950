package export

import (
	"fmt"
	"slices"
	"strings"
)

// Sink is one destination of telemetry.
type Sink string

const (
	SinkOTLP    Sink = "otlp"
	SinkWandB   Sink = "wandb"
	SinkConsole Sink = "console"
	SinkNone    Sink = "none"
)

var allSinks = []Sink{SinkOTLP, SinkWandB, SinkConsole, SinkNone}

// endpointVars are the variables that name an OTLP endpoint; any of them
// set makes otlp the default sink.
var endpointVars = []string{
	"OTEL_EXPORTER_OTLP_ENDPOINT",
	"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
	"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
	"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
}

// ParseSinks parses the --telemetry value: a comma-separated list of otlp,
// wandb, console, none. Empty means the default: otlp when an OTLP
// endpoint is set in the environment, none otherwise. "none" cannot be
// combined with another sink.
func ParseSinks(value string, getenv func(string) string) ([]Sink, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		for _, v := range endpointVars {
			if getenv != nil && getenv(v) != "" {
				return []Sink{SinkOTLP}, nil
			}
		}
		return nil, nil
	}
	var sinks []Sink
	for _, part := range strings.Split(value, ",") {
		s := Sink(strings.ToLower(strings.TrimSpace(part)))
		if s == "" {
			continue
		}
		if !slices.Contains(allSinks, s) {
			return nil, fmt.Errorf("unknown telemetry sink %q: use otlp, wandb, console or none, comma-separated", part)
		}
		if !slices.Contains(sinks, s) {
			sinks = append(sinks, s)
		}
	}
	if slices.Contains(sinks, SinkNone) {
		if len(sinks) > 1 {
			return nil, fmt.Errorf("telemetry sink none cannot be combined with others (%s)", value)
		}
		return nil, nil
	}
	return sinks, nil
}

// Has reports whether sinks holds s.
func Has(sinks []Sink, s Sink) bool { return slices.Contains(sinks, s) }
