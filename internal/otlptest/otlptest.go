package otlptest

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	colllogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	collmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	colltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Receiver stores what it was sent.
type Receiver struct {
	mu        sync.Mutex
	spans     []*tracepb.Span
	resources []map[string]string
	metrics   []*metricspb.Metric
	logs      []*logspb.LogRecord
	requests  int
}

// Spans returns every span received.
func (r *Receiver) Spans() []*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*tracepb.Span(nil), r.spans...)
}

// Metrics returns every metric received (one entry per metric per export).
func (r *Receiver) Metrics() []*metricspb.Metric {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*metricspb.Metric(nil), r.metrics...)
}

// Logs returns every log record received.
func (r *Receiver) Logs() []*logspb.LogRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*logspb.LogRecord(nil), r.logs...)
}

// Resources returns the resource attributes of every export, as strings.
func (r *Receiver) Resources() []map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]map[string]string(nil), r.resources...)
}

// Requests counts export requests of any signal.
func (r *Receiver) Requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

func (r *Receiver) addTraces(req *colltrace.ExportTraceServiceRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	for _, rs := range req.GetResourceSpans() {
		r.resources = append(r.resources, attrs(rs.GetResource().GetAttributes()))
		for _, ss := range rs.GetScopeSpans() {
			r.spans = append(r.spans, ss.GetSpans()...)
		}
	}
}

func (r *Receiver) addMetrics(req *collmetrics.ExportMetricsServiceRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	for _, rm := range req.GetResourceMetrics() {
		r.resources = append(r.resources, attrs(rm.GetResource().GetAttributes()))
		for _, sm := range rm.GetScopeMetrics() {
			r.metrics = append(r.metrics, sm.GetMetrics()...)
		}
	}
}

func (r *Receiver) addLogs(req *colllogs.ExportLogsServiceRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	for _, rl := range req.GetResourceLogs() {
		r.resources = append(r.resources, attrs(rl.GetResource().GetAttributes()))
		for _, sl := range rl.GetScopeLogs() {
			r.logs = append(r.logs, sl.GetLogRecords()...)
		}
	}
}

// HTTPHandler serves OTLP/HTTP protobuf at /v1/traces, /v1/metrics and
// /v1/logs.
func (r *Receiver) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, req *http.Request) {
		var msg colltrace.ExportTraceServiceRequest
		if !decode(w, req, &msg) {
			return
		}
		r.addTraces(&msg)
		reply(w, &colltrace.ExportTraceServiceResponse{})
	})
	mux.HandleFunc("POST /v1/metrics", func(w http.ResponseWriter, req *http.Request) {
		var msg collmetrics.ExportMetricsServiceRequest
		if !decode(w, req, &msg) {
			return
		}
		r.addMetrics(&msg)
		reply(w, &collmetrics.ExportMetricsServiceResponse{})
	})
	mux.HandleFunc("POST /v1/logs", func(w http.ResponseWriter, req *http.Request) {
		var msg colllogs.ExportLogsServiceRequest
		if !decode(w, req, &msg) {
			return
		}
		r.addLogs(&msg)
		reply(w, &colllogs.ExportLogsServiceResponse{})
	})
	return mux
}

func decode(w http.ResponseWriter, req *http.Request, msg proto.Message) bool {
	body, err := io.ReadAll(req.Body)
	if err == nil {
		err = proto.Unmarshal(body, msg)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

func reply(w http.ResponseWriter, msg proto.Message) {
	b, _ := proto.Marshal(msg)
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(b)
}

// StartHTTP serves the receiver over HTTP on loopback until the test ends
// and returns its endpoint (http://127.0.0.1:PORT).
func StartHTTP(t testing.TB) (*Receiver, string) {
	t.Helper()
	r := &Receiver{}
	srv := httptest.NewServer(r.HTTPHandler())
	t.Cleanup(srv.Close)
	return r, srv.URL
}

type grpcTraces struct {
	colltrace.UnimplementedTraceServiceServer
	r *Receiver
}

func (g grpcTraces) Export(_ context.Context, req *colltrace.ExportTraceServiceRequest) (*colltrace.ExportTraceServiceResponse, error) {
	g.r.addTraces(req)
	return &colltrace.ExportTraceServiceResponse{}, nil
}

type grpcMetrics struct {
	collmetrics.UnimplementedMetricsServiceServer
	r *Receiver
}

func (g grpcMetrics) Export(_ context.Context, req *collmetrics.ExportMetricsServiceRequest) (*collmetrics.ExportMetricsServiceResponse, error) {
	g.r.addMetrics(req)
	return &collmetrics.ExportMetricsServiceResponse{}, nil
}

type grpcLogs struct {
	colllogs.UnimplementedLogsServiceServer
	r *Receiver
}

func (g grpcLogs) Export(_ context.Context, req *colllogs.ExportLogsServiceRequest) (*colllogs.ExportLogsServiceResponse, error) {
	g.r.addLogs(req)
	return &colllogs.ExportLogsServiceResponse{}, nil
}

// ServeGRPC serves the receiver over gRPC on l until stop is called.
func (r *Receiver) ServeGRPC(l net.Listener) (stop func()) {
	s := grpc.NewServer()
	colltrace.RegisterTraceServiceServer(s, grpcTraces{r: r})
	collmetrics.RegisterMetricsServiceServer(s, grpcMetrics{r: r})
	colllogs.RegisterLogsServiceServer(s, grpcLogs{r: r})
	go s.Serve(l)
	return s.Stop
}

// StartGRPC serves the receiver over gRPC on loopback until the test ends
// and returns its endpoint (http://127.0.0.1:PORT).
func StartGRPC(t testing.TB) (*Receiver, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Receiver{}
	t.Cleanup(r.ServeGRPC(l))
	return r, "http://" + l.Addr().String()
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	out := map[string]string{}
	for _, kv := range kvs {
		out[kv.GetKey()] = anyString(kv.GetValue())
	}
	return out
}

// anyString renders an attribute value the way a test wants to compare it.
func anyString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_DoubleValue:
		return strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
	case *commonpb.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	}
	return v.String()
}

// SpanAttrs returns a span's attributes as strings.
func SpanAttrs(s *tracepb.Span) map[string]string { return attrs(s.GetAttributes()) }

// PointAttrs returns a number data point's attributes as strings.
func PointAttrs(p *metricspb.NumberDataPoint) map[string]string { return attrs(p.GetAttributes()) }

// LogAttrs returns a log record's attributes as strings.
func LogAttrs(l *logspb.LogRecord) map[string]string { return attrs(l.GetAttributes()) }
