package wandb

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/anonymize-dev/anonymize/telemetry/wandb/wandbtest"
)

// eventMetrics is one metric export with a GPU gauge and the people count.
func eventMetrics(at time.Time, people int64) *metricdata.ResourceMetrics {
	return &metricdata.ResourceMetrics{ScopeMetrics: []metricdata.ScopeMetrics{{Metrics: []metricdata.Metrics{
		gauge(MetricGPUMemoryUsage, point(at, int64(2<<30), attribute.String(AttrHWID, "GPU-1"))),
		gauge(MetricDetectedPeople, point(at, people)),
	}}}}
}

func exportEvent(t *testing.T, r *Run, at time.Time, people int64) {
	t.Helper()
	if err := r.MetricExporter().Export(context.Background(), eventMetrics(at, people)); err != nil {
		t.Fatal(err)
	}
}

func TestOnlineUpload(t *testing.T) {
	for _, exitCode := range []int{0, 3} {
		t.Run(fmt.Sprint("exit code ", exitCode), func(t *testing.T) {
			srv := wandbtest.NewServer(t, testKey)
			s := testSettings(t, ModeOnline, srv, "online01")
			cfg := map[string]any{"device": "cpu", "model.detector.sha256": "feedbeef", "batch": 4}
			r, tp := startRun(t, Options{Settings: s, Config: cfg, now: fixedClock(runStart)}, true)
			if r.Mode() != ModeOnline {
				t.Fatalf("mode %s, want online", r.Mode())
			}
			frames := emitFrames(t, tp, runStart.Add(time.Second), 7)
			// Known once the models are loaded, after the run started.
			r.SetConfig(map[string]any{"model.pose.sha256": "cafe"})
			emitRunSpan(tp, runStart, frames[len(frames)-1].end)
			shutdown(t, tp)
			for i := range 3 {
				exportEvent(t, r, runStart.Add(time.Duration(i)*time.Second), int64(i))
			}
			r.SetSummary(map[string]any{"frames.total": 7})
			res := finish(t, r, 10*time.Second, exitCode)

			if !res.Completed || res.UploadErr != nil || res.Message != "" {
				t.Fatalf("upload not complete: %+v", res)
			}
			if res.UploadedHistoryRows != 7 || res.HistoryRows != 7 || res.UploadedEvents != 3 || !res.SummaryUploaded {
				t.Errorf("result counts: %+v", res)
			}
			// No entity was set: the one the server answered is used.
			if want := srv.URL + "/" + wandbtest.DefaultEntity + "/proj/runs/online01"; res.RunURL != want {
				t.Errorf("RunURL = %q, want %q", res.RunURL, want)
			}
			run := serverRun(t, srv, wandbtest.DefaultEntity, "proj", "online01")
			checkStored(t, "history", run.History, localHistory(t, r.Dir()), false)
			checkStored(t, "events", run.Events, localEvents(t, r.Dir()), false)
			sum := localSummary(t, r.Dir())
			if !jsonEqual(run.Summary, sum) {
				t.Errorf("server summary %v\nlocal summary %v", run.Summary, sum)
			}
			if sum["frames.total"] != 7.0 || sum["otel/span/anonymize_video/video.codec"] != "h264" {
				t.Errorf("summary lacks SetSummary's or the run span's values: %v", sum)
			}
			wantCfg := map[string]any{
				"device":                map[string]any{"value": "cpu", "desc": nil},
				"model.detector.sha256": map[string]any{"value": "feedbeef", "desc": nil},
				"batch":                 map[string]any{"value": 4, "desc": nil},
				"model.pose.sha256":     map[string]any{"value": "cafe", "desc": nil},
			}
			if !jsonEqual(run.Config, wantCfg) {
				t.Errorf("config %v, want %v", run.Config, wantCfg)
			}
			if run.DisplayName != "test run" {
				t.Errorf("display name %q", run.DisplayName)
			}
			if !run.Complete || run.ExitCode == nil || *run.ExitCode != exitCode || run.CompleteCount != 1 {
				t.Errorf("completion: complete=%v exit=%v count=%d, want exit code %d once", run.Complete, run.ExitCode, run.CompleteCount, exitCode)
			}
			st := localSync(t, r.Dir())
			if !st.Completed || st.Entity != wandbtest.DefaultEntity || st.HistoryLines != 7 || st.EventsLines != 3 {
				t.Errorf("sync.json: %+v", st)
			}
			ri, err := readRunInfo(r.Dir())
			if err != nil {
				t.Fatal(err)
			}
			if ri.ExitCode == nil || *ri.ExitCode != exitCode || ri.EndTime == nil || ri.Config["model.pose.sha256"] != "cafe" {
				t.Errorf("run.json exit code %v, end %v, config %v", ri.ExitCode, ri.EndTime, ri.Config)
			}
			for _, req := range srv.Requests() {
				if req.Status != http.StatusOK {
					t.Errorf("request %s answered %d", req.Path, req.Status)
				}
			}
		})
	}
}

func TestUploadRefused(t *testing.T) {
	for _, tc := range []struct {
		name    string
		key     string
		fault   *wandbtest.Fault
		wantErr string
	}{
		{name: "wrong API key", key: "not-the-key", wantErr: "WANDB_API_KEY"},
		{name: "GraphQL error", key: testKey, fault: &wandbtest.Fault{GraphQLError: "entity nobody not found"}, wantErr: "entity nobody not found"},
		{name: "forbidden", key: testKey, fault: &wandbtest.Fault{Status: http.StatusForbidden}, wantErr: "403"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := wandbtest.NewServer(t, testKey)
			if tc.fault != nil {
				srv.Inject(1, *tc.fault)
			}
			s := testSettings(t, ModeOnline, srv, "refused1")
			s.APIKey = tc.key
			log, logs := newLog()
			r, tp := startRun(t, Options{Settings: s, Logger: log}, false)
			emitFrames(t, tp, time.Now(), 3)
			shutdown(t, tp)
			res := finish(t, r, 10*time.Second, 0)
			if res.Completed || res.UploadErr == nil || !strings.Contains(res.UploadErr.Error(), tc.wantErr) {
				t.Fatalf("UploadErr = %v, want one mentioning %q", res.UploadErr, tc.wantErr)
			}
			if !strings.Contains(res.Message, SyncCommand+" "+r.Dir()) {
				t.Errorf("message does not say how to upload later: %q", res.Message)
			}
			if n := len(srv.Requests()); n != 1 {
				t.Errorf("%d requests; a refusal must not be retried", n)
			}
			if !strings.Contains(logs.String(), "upload stopped") {
				t.Errorf("no warning logged:\n%s", logs)
			}
			if res.HistoryRows != 3 || len(localHistory(t, r.Dir())) != 3 {
				t.Errorf("the local run lost rows: %+v", res)
			}
		})
	}
}

func TestFlakyServer(t *testing.T) {
	for _, tc := range []struct {
		name   string
		faults []wandbtest.Fault // each injected twice
		resent bool              // dropped connections make the server see a batch again
	}{
		{name: "500s", faults: []wandbtest.Fault{
			{Status: 500, Endpoint: wandbtest.EndpointGraphQL}, {Status: 502, Endpoint: wandbtest.EndpointFileStream}, {Status: 503}}},
		{name: "429s", faults: []wandbtest.Fault{{Status: http.StatusTooManyRequests}}},
		{name: "dropped connections", resent: true, faults: []wandbtest.Fault{
			{Drop: true, Endpoint: wandbtest.EndpointGraphQL}, {Drop: true, Endpoint: wandbtest.EndpointFileStream}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := wandbtest.NewServer(t, testKey)
			injected := 0
			for _, f := range tc.faults {
				srv.Inject(2, f)
				injected += 2
			}
			s := testSettings(t, ModeOnline, srv, "flaky001")
			r, tp := startRun(t, Options{Settings: s}, true)
			emitFrames(t, tp, time.Now(), 20)
			shutdown(t, tp)
			for i := range 5 {
				exportEvent(t, r, time.Now(), int64(i))
			}
			res := finish(t, r, 20*time.Second, 0)
			if !res.Completed {
				t.Fatalf("not completed: %+v", res)
			}
			played := srv.Count(func(r wandbtest.Request) bool { return r.Fault != "" })
			if played != injected {
				t.Errorf("%d faults played, %d injected", played, injected)
			}
			run := serverRun(t, srv, wandbtest.DefaultEntity, "proj", "flaky001")
			checkStored(t, "history", run.History, localHistory(t, r.Dir()), tc.resent)
			checkStored(t, "events", run.Events, localEvents(t, r.Dir()), tc.resent)
			if tc.resent && len(run.History.Resent())+len(run.Events.Resent()) == 0 && run.Upserts < 2 {
				t.Error("connections were dropped but nothing was sent again")
			}
			if !run.Complete || (!tc.resent && run.CompleteCount != 1) {
				t.Errorf("complete=%v, %d completion requests", run.Complete, run.CompleteCount)
			}
		})
	}
}

// A server that never answers must not slow the program: exports return
// while the upload request still hangs, and Finish returns at its
// deadline, pointing to `anonymize wandb sync`.
func TestHangingServer(t *testing.T) {
	srv := wandbtest.NewServer(t, testKey)
	srv.Hang(true)
	s := testSettings(t, ModeOnline, srv, "hanging1")
	r, tp := startRun(t, Options{Settings: s}, false) // spans exported inside End
	waitFor(t, "the upload request to reach the server", func() bool { return srv.Hanging() == 1 })

	withinWatchdog(t, time.Minute, "exporting 100 frames", func() {
		emitFrames(t, tp, time.Now(), 100)
		for i := range 100 {
			_ = r.MetricExporter().Export(context.Background(), eventMetrics(time.Now(), int64(i)))
		}
	})
	if srv.Hanging() != 1 {
		t.Fatal("the upload request stopped hanging: the exports may have waited for it")
	}
	shutdown(t, tp)

	var res Result
	withinWatchdog(t, time.Minute, "Finish with a 200 ms deadline", func() {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		res = r.Finish(ctx, 0)
	})
	if res.Completed || !strings.Contains(res.Message, SyncCommand+" "+r.Dir()) {
		t.Errorf("result: completed=%v message=%q", res.Completed, res.Message)
	}
	if res.HistoryRows != 100 || res.Events != 100 || res.Dropped.Total() != 0 {
		t.Errorf("local run incomplete: %+v", res)
	}

	// The hang over, the run uploads in full.
	run := resync(t, srv, s, r.Dir(), "hanging1")
	if !run.Complete {
		t.Error("not completed after sync")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Nothing needs the network offline or disabled, and online without a key
// falls back to offline.
func TestModes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		mode     Mode
		key      string
		wantMode Mode
		prefix   string
		warn     string
	}{
		{name: "offline", mode: ModeOffline, key: testKey, wantMode: ModeOffline, prefix: "offline-run-"},
		{name: "online without key", mode: ModeOnline, wantMode: ModeOffline, prefix: "offline-run-", warn: "WANDB_API_KEY is not set"},
		{name: "disabled", mode: ModeDisabled, wantMode: ModeDisabled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := wandbtest.NewServer(t, testKey)
			s := testSettings(t, tc.mode, srv, "modes001")
			s.APIKey = tc.key
			log, logs := newLog()
			r, tp := startRun(t, Options{Settings: s, Logger: log}, false)
			if r.Mode() != tc.wantMode {
				t.Fatalf("mode %s, want %s", r.Mode(), tc.wantMode)
			}
			emitFrames(t, tp, time.Now(), 2)
			shutdown(t, tp)
			res := finish(t, r, 5*time.Second, 0)
			if n := len(srv.Requests()); n != 0 {
				t.Errorf("%d requests to the server", n)
			}
			if tc.warn != "" && !strings.Contains(logs.String(), tc.warn) {
				t.Errorf("no warning %q in:\n%s", tc.warn, logs)
			}
			if tc.wantMode == ModeDisabled {
				if r.Dir() != "" || res.HistoryRows != 0 {
					t.Errorf("disabled run wrote something: dir %q, %+v", r.Dir(), res)
				}
				if ents, err := os.ReadDir(s.Dir); err != nil || len(ents) != 0 {
					t.Errorf("disabled run left %d entries in %s (err %v)", len(ents), s.Dir, err)
				}
				return
			}
			if !strings.HasPrefix(filepath.Base(r.Dir()), tc.prefix) || !strings.HasSuffix(r.Dir(), "-modes001") {
				t.Errorf("run folder %s, want %s...-modes001", r.Dir(), tc.prefix)
			}
			if res.HistoryRows != 2 || !strings.Contains(res.Message, SyncCommand) {
				t.Errorf("result %+v", res)
			}
		})
	}
}

// A server that says when to come back is believed, up to RetryMax, so a
// rate-limited client neither hammers it nor sleeps for minutes.
func TestBackoffHonoursRetryAfter(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1)%2 == 1 {
			w.Header().Set("Retry-After", "2")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		}
		w.Write([]byte("{}"))
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name     string
		retryMax time.Duration
		want     time.Duration
	}{
		{"Retry-After capped at RetryMax", 50 * time.Millisecond, 50 * time.Millisecond},
		{"Retry-After beyond the backoff", 5 * time.Second, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var delays []time.Duration
			var errs []error
			c := &client{base: srv.URL, apiKey: testKey, opts: UploadOptions{
				RetryInitial: time.Millisecond, RetryMax: tc.retryMax,
				RequestTimeout: 5 * time.Second, HTTPClient: srv.Client(),
			}, onRetry: func(err error, d time.Duration) { errs, delays = append(errs, err), append(delays, d) }}
			if _, err := c.post(context.Background(), srv.URL, []byte("{}")); err != nil {
				t.Fatal(err)
			}
			var ae *apiError
			if len(delays) != 1 || delays[0] != tc.want || !errors.As(errs[0], &ae) || ae.code != http.StatusTooManyRequests {
				t.Fatalf("retried after %v for %v, want once after %v for the 429", delays, errs, tc.want)
			}
		})
	}
}
