package export

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/anonymize-dev/anonymize/telemetry"
)

// runCounter is anonymize.runs: a run adds one as started when its
// telemetry is set up, and one under how it ended when it shuts down.
type runCounter struct{ c metric.Int64Counter }

func newRunCounter(m metric.Meter) (*runCounter, error) {
	c, err := m.Int64Counter(telemetry.MetricRuns, metric.WithUnit("{run}"),
		metric.WithDescription("Runs of anonymize commands, by status."))
	if err != nil {
		return nil, err
	}
	return &runCounter{c: c}, nil
}

// start adds 0 to every status first, as the pipeline does for its
// counters, so each series exists from the first export: a dashboard then
// shows 0 failed runs rather than "No data".
func (r *runCounter) start(ctx context.Context) {
	for _, s := range telemetry.RunStatuses {
		r.add(ctx, s, 0)
	}
	r.add(ctx, telemetry.RunStarted, 1)
}

// end counts the run under how it ended.
func (r *runCounter) end(ctx context.Context, exitCode int, interrupted bool) {
	r.add(ctx, runStatus(exitCode, interrupted), 1)
}

func (r *runCounter) add(ctx context.Context, status string, n int64) {
	r.c.Add(ctx, n, metric.WithAttributes(attribute.String(telemetry.AttrStatus, status)))
}

// runStatus is how a command that exits with exitCode ended; interrupted
// says it was stopped (a signal, a cancelled context) rather than failed.
func runStatus(exitCode int, interrupted bool) string {
	switch {
	case exitCode == 0:
		return telemetry.RunSucceeded
	case interrupted:
		return telemetry.RunInterrupted
	}
	return telemetry.RunFailed
}
