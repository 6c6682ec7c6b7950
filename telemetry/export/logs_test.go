package export

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"

	"github.com/anonymize-dev/anonymize/internal/otlptest"
)

// setupOTLP runs Setup with the OTLP sink pointed at endpoint, without
// NVML, and returns its warnings' buffer.
func setupOTLP(t *testing.T, endpoint string, env ...string) (*Telemetry, *bytes.Buffer) {
	t.Helper()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_METRIC_EXPORT_INTERVAL", "100000") // only the final export
	for i := 0; i+1 < len(env); i += 2 {
		t.Setenv(env[i], env[i+1])
	}
	var logs bytes.Buffer
	tel, err := Setup(context.Background(), Options{
		Sinks: []Sink{SinkOTLP}, Getenv: func(string) string { return "" }, NVML: noNVMLLib(),
		Log: slog.New(slog.NewTextHandler(&logs, nil)), ServiceVersion: "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	return tel, &logs
}

// TestOTLPLogs sends records through LogHandler: they arrive with the
// span of the context they were logged with, the bridge's severity, their
// attributes and the resource of the traces and metrics.
func TestOTLPLogs(t *testing.T) {
	recv, endpoint := otlptest.StartHTTP(t)
	tel, warnings := setupOTLP(t, endpoint)
	h := tel.LogHandler()
	if h == nil {
		t.Fatal("no log handler with the OTLP sink on")
	}
	log := slog.New(h)
	ctx, span := otel.Tracer("test").Start(context.Background(), "anonymize_video")
	log.WarnContext(ctx, "frame size is odd", "input", "a.mp4")
	log.Info("model loaded", "model", "detector")
	log.ErrorContext(ctx, "encoder failed")
	span.End()
	tel.Shutdown(context.Background(), 0, false)
	if strings.Contains(warnings.String(), "telemetry incomplete") {
		t.Errorf("losses reported:\n%s", warnings)
	}

	byBody := map[string]*logspb.LogRecord{}
	for _, r := range recv.Logs() {
		byBody[r.GetBody().GetStringValue()] = r
	}
	sc := span.SpanContext()
	tid, sid := sc.TraceID(), sc.SpanID()
	tests := []struct {
		body     string
		severity logspb.SeverityNumber
		text     string
		traced   bool
		attrs    map[string]string
	}{
		{"frame size is odd", logspb.SeverityNumber_SEVERITY_NUMBER_WARN, "WARN", true, map[string]string{"input": "a.mp4"}},
		{"model loaded", logspb.SeverityNumber_SEVERITY_NUMBER_INFO, "INFO", false, map[string]string{"model": "detector"}},
		{"encoder failed", logspb.SeverityNumber_SEVERITY_NUMBER_ERROR, "ERROR", true, map[string]string{}},
	}
	for _, tt := range tests {
		r, ok := byBody[tt.body]
		if !ok {
			t.Errorf("record %q did not arrive (got %d records)", tt.body, len(recv.Logs()))
			continue
		}
		if r.GetSeverityNumber() != tt.severity || r.GetSeverityText() != tt.text {
			t.Errorf("%q: severity %v %q, want %v %q", tt.body, r.GetSeverityNumber(), r.GetSeverityText(), tt.severity, tt.text)
		}
		wantTID, wantSID := []byte(nil), []byte(nil)
		if tt.traced {
			wantTID, wantSID = tid[:], sid[:]
		}
		if !bytes.Equal(r.GetTraceId(), wantTID) || !bytes.Equal(r.GetSpanId(), wantSID) {
			t.Errorf("%q: trace %x span %x, want %x %x", tt.body, r.GetTraceId(), r.GetSpanId(), wantTID, wantSID)
		}
		got := otlptest.LogAttrs(r)
		for k, v := range tt.attrs {
			if got[k] != v {
				t.Errorf("%q: attribute %s=%q, want %q", tt.body, k, got[k], v)
			}
		}
	}

	// One resource for every signal: the same process.
	ids := map[string]bool{}
	for _, res := range recv.Resources() {
		ids[res["service.instance.id"]] = true
	}
	if len(ids) != 1 || ids[""] {
		t.Errorf("service.instance.id over the exports: %v, want one", ids)
	}
}

// TestOTLPLogsNone: OTEL_LOGS_EXPORTER=none turns the logs off, not the rest.
func TestOTLPLogsNone(t *testing.T) {
	recv, endpoint := otlptest.StartHTTP(t)
	tel, _ := setupOTLP(t, endpoint, "OTEL_LOGS_EXPORTER", "none")
	if h := tel.LogHandler(); h != nil {
		t.Errorf("a log handler (%T) with OTEL_LOGS_EXPORTER=none", h)
	}
	tel.Shutdown(context.Background(), 0, false)
	if len(recv.Metrics()) == 0 {
		t.Error("no metrics: only the logs were to be off")
	}
}

// TestOTLPLogsLostReported: a receiver that refuses logs makes Shutdown's
// warning count the records it lost, with the reason.
func TestOTLPLogsLostReported(t *testing.T) {
	recv := &otlptest.Receiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/logs" {
			http.Error(w, "logs are not accepted here", http.StatusBadRequest)
			return
		}
		recv.HTTPHandler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	tel, warnings := setupOTLP(t, srv.URL)
	log := slog.New(tel.LogHandler())
	log.Warn("one")
	log.Warn("two")
	tel.Shutdown(context.Background(), 0, false)
	if w := warnings.String(); !strings.Contains(w, "telemetry incomplete") || !strings.Contains(w, "2 of 2 log records not sent to otlp") {
		t.Errorf("warnings %q: want the 2 lost log records counted", w)
	}
	if len(recv.Metrics()) == 0 {
		t.Error("metrics did not arrive: only the logs were refused")
	}
}
