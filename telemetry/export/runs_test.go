package export

import (
	"context"
	"testing"

	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"

	"github.com/anonymize-dev/anonymize/internal/otlptest"
	"github.com/anonymize-dev/anonymize/telemetry"
)

// TestRunsCounter: a run counts once as started and once under how it
// ended, every status series is there (at 0 when it did not happen), and
// the count reaches the final export.
func TestRunsCounter(t *testing.T) {
	tests := []struct {
		name        string
		exitCode    int
		interrupted bool
		want        string
	}{
		{"succeeded", 0, false, telemetry.RunSucceeded},
		{"failed", 1, false, telemetry.RunFailed},
		{"files failed", 3, false, telemetry.RunFailed},
		{"SIGINT", 130, true, telemetry.RunInterrupted},
		{"SIGTERM", 143, true, telemetry.RunInterrupted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recv, endpoint := otlptest.StartHTTP(t)
			tel, _ := setupOTLP(t, endpoint)
			tel.Shutdown(context.Background(), tt.exitCode, tt.interrupted)

			var runs *metricspb.Metric
			for _, m := range recv.Metrics() {
				if m.GetName() == telemetry.MetricRuns {
					runs = m // the last export's
				}
			}
			if runs == nil {
				t.Fatalf("%s not exported", telemetry.MetricRuns)
			}
			if runs.GetUnit() != "{run}" || runs.GetSum() == nil || !runs.GetSum().GetIsMonotonic() {
				t.Errorf("%s: unit %q, sum %v: want a monotonic counter of {run}", runs.GetName(), runs.GetUnit(), runs.GetSum())
			}
			got := map[string]int64{}
			for _, p := range runs.GetSum().GetDataPoints() {
				got[otlptest.PointAttrs(p)[telemetry.AttrStatus]] += p.GetAsInt()
			}
			want := map[string]int64{telemetry.RunStarted: 1, tt.want: 1}
			for _, s := range telemetry.RunStatuses {
				v, ok := got[s]
				if !ok {
					t.Errorf("no %s=%s series", telemetry.AttrStatus, s)
				}
				if v != want[s] {
					t.Errorf("%s=%s: %d, want %d", telemetry.AttrStatus, s, v, want[s])
				}
			}
			if len(got) != len(telemetry.RunStatuses) {
				t.Errorf("series %v, want exactly %v", got, telemetry.RunStatuses)
			}
		})
	}
}
