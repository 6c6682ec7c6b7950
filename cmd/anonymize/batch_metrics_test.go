package main

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/anonymize-dev/anonymize/batch"
	"github.com/anonymize-dev/anonymize/telemetry"
)

// TestCountBatchFiles: anonymize.batch.files has both status series from
// the start, counts each file that ended done or failed (not one skipped
// or cut short), and the progress bar's hook still runs.
func TestCountBatchFiles(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	prev := otel.GetMeterProvider()
	otel.SetMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	t.Cleanup(func() { otel.SetMeterProvider(prev) })

	var seen []batch.Status
	hooks, err := countBatchFiles(context.Background(), batch.Hooks{
		FileFinished: func(f batch.FileReport) { seen = append(seen, f.Status) },
	})
	if err != nil {
		t.Fatal(err)
	}
	counts := func() map[string]int64 {
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		out := map[string]int64{}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if m.Name != telemetry.MetricBatchFiles {
					continue
				}
				for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
					status, _ := dp.Attributes.Value(telemetry.AttrStatus)
					out[status.AsString()] = dp.Value
				}
			}
		}
		return out
	}
	if got := counts(); len(got) != 2 || got["done"] != 0 || got["failed"] != 0 {
		t.Errorf("before any file: %v, want done and failed at 0", got)
	}
	for _, s := range []batch.Status{batch.StatusDone, batch.StatusFailed, batch.StatusDone, batch.StatusPending, batch.StatusSkipped} {
		hooks.FileFinished(batch.FileReport{Status: s})
	}
	if got := counts(); len(got) != 2 || got["done"] != 2 || got["failed"] != 1 {
		t.Errorf("after 2 done, 1 failed, 1 pending, 1 skipped: %v", got)
	}
	if len(seen) != 5 {
		t.Errorf("the wrapped hook saw %d files, want 5", len(seen))
	}
}
