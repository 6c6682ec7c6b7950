package wandb

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anonymize-dev/anonymize/telemetry/wandb/wandbtest"
)

// offlineRun records a finished offline run of n frames in dir.
func offlineRun(t *testing.T, s Settings, n int) string {
	t.Helper()
	s.Mode = ModeOffline
	r, tp := startRun(t, Options{Settings: s, Config: map[string]any{"device": "cpu"}, now: fixedClock(runStart)}, true)
	frames := emitFrames(t, tp, runStart.Add(time.Second), n)
	r.SetConfig(map[string]any{"model.pose.sha256": "cafe"})
	emitRunSpan(tp, runStart, frames[len(frames)-1].end)
	shutdown(t, tp)
	for i := range 3 {
		exportEvent(t, r, runStart.Add(time.Duration(i)*time.Second), int64(i))
	}
	res := finish(t, r, 5*time.Second, 0)
	if res.LocalErr != nil || res.HistoryRows != n {
		t.Fatalf("offline run: %+v", res)
	}
	return r.Dir()
}

// An offline run synced later reaches the server exactly as the same run
// uploaded online: the data is written locally once, then sent.
func TestOfflineSyncMatchesOnline(t *testing.T) {
	srv := wandbtest.NewServer(t, testKey)
	cfg := map[string]any{"device": "cpu"}

	on := testSettings(t, ModeOnline, srv, "online02")
	r, tp := startRun(t, Options{Settings: on, Config: cfg, now: fixedClock(runStart)}, true)
	frames := emitFrames(t, tp, runStart.Add(time.Second), 9)
	r.SetConfig(map[string]any{"model.pose.sha256": "cafe"})
	emitRunSpan(tp, runStart, frames[len(frames)-1].end)
	shutdown(t, tp)
	for i := range 3 {
		exportEvent(t, r, runStart.Add(time.Duration(i)*time.Second), int64(i))
	}
	if res := finish(t, r, 10*time.Second, 0); !res.Completed {
		t.Fatalf("online run not completed: %+v", res)
	}

	off := testSettings(t, ModeOffline, srv, "offline2")
	dir := offlineRun(t, off, 9)
	if err := Sync(context.Background(), []string{dir}, off, nil); err != nil {
		t.Fatal(err)
	}

	a := serverRun(t, srv, wandbtest.DefaultEntity, "proj", "online02")
	b := serverRun(t, srv, wandbtest.DefaultEntity, "proj", "offline2")
	for _, c := range []struct {
		what string
		a, b wandbtest.File
	}{{"history", a.History, b.History}, {"events", a.Events, b.Events}} {
		ra, err := c.a.Rows()
		if err != nil {
			t.Fatal(err)
		}
		rb, err := c.b.Rows()
		if err != nil {
			t.Fatal(err)
		}
		if len(ra) == 0 || !jsonEqual(ra, rb) {
			t.Errorf("%s differs:\n online %v\noffline %v", c.what, ra, rb)
		}
	}
	if !jsonEqual(a.Summary, b.Summary) || !jsonEqual(a.Config, b.Config) || a.Config["model.pose.sha256"] == nil {
		t.Errorf("summary or config differ:\n%v %v\n%v %v", a.Summary, a.Config, b.Summary, b.Config)
	}
	if !b.Complete || b.CompleteCount != 1 || *b.ExitCode != 0 {
		t.Errorf("synced run: complete=%v count=%d", b.Complete, b.CompleteCount)
	}
}

// cancelAfter cancels the sync once n file stream answers have arrived,
// as a user pressing Ctrl-C halfway would.
type cancelAfter struct {
	n      atomic.Int32
	limit  int32
	cancel context.CancelFunc
}

func (c *cancelAfter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || !strings.HasSuffix(req.URL.Path, "/file_stream") {
		return resp, err
	}
	// Read the answer first, so the cancellation falls between requests.
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	if c.n.Add(1) == c.limit {
		c.cancel()
	}
	return resp, err
}

// A sync interrupted halfway resumes where it stopped: every line reaches
// the server exactly once, and the run completes once.
func TestSyncResumes(t *testing.T) {
	for _, tc := range []struct {
		name      string
		interrupt func(srv *wandbtest.Server, s *Settings) context.Context
		wantErr   string
	}{
		{
			name: "key revoked",
			interrupt: func(srv *wandbtest.Server, _ *Settings) context.Context {
				srv.UnauthorizedAfter(4) // the upsert and three batches
				return context.Background()
			},
			wantErr: "401",
		},
		{
			name: "cancelled",
			interrupt: func(_ *wandbtest.Server, s *Settings) context.Context {
				ctx, cancel := context.WithCancel(context.Background())
				t.Cleanup(cancel)
				s.Upload.HTTPClient = &http.Client{Transport: &cancelAfter{limit: 3, cancel: cancel}}
				return ctx
			},
			wantErr: "context canceled",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := wandbtest.NewServer(t, testKey)
			s := testSettings(t, ModeOffline, srv, "resume01")
			const frames = 30 // 8 batches of 4
			dir := offlineRun(t, s, frames)

			first := s
			ctx := tc.interrupt(srv, &first)
			err := Sync(ctx, []string{dir}, first, nil)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("interrupted sync: err = %v, want one mentioning %q", err, tc.wantErr)
			}
			st := localSync(t, dir)
			if st.Completed || st.HistoryLines == 0 || st.HistoryLines >= frames {
				t.Fatalf("the first sync should have stopped halfway: %+v", st)
			}
			if run := serverRun(t, srv, wandbtest.DefaultEntity, "proj", "resume01"); run.History.Len() != st.HistoryLines {
				t.Errorf("server holds %d rows, sync.json says %d were sent", run.History.Len(), st.HistoryLines)
			}

			run := resync(t, srv, s, dir, "resume01")
			checkStored(t, "events", run.Events, localEvents(t, dir), false)
			if !run.Complete || run.CompleteCount != 1 || run.ExitCode == nil || *run.ExitCode != 0 {
				t.Errorf("complete=%v count=%d exit=%v", run.Complete, run.CompleteCount, run.ExitCode)
			}

			// A third sync has nothing to do.
			log, logs := newLog()
			if err := Sync(context.Background(), []string{dir}, s, log); err != nil {
				t.Fatal(err)
			}
			if after := serverRun(t, srv, wandbtest.DefaultEntity, "proj", "resume01"); after.CompleteCount != 1 || after.Upserts != run.Upserts {
				t.Errorf("a completed run was sent again")
			}
			if !strings.Contains(logs.String(), "already uploaded") {
				t.Errorf("no skip message:\n%s", logs)
			}
		})
	}
}

// A sync that keeps failing gives up after the attempts allowed, and
// says why.
func TestSyncGivesUp(t *testing.T) {
	srv := wandbtest.NewServer(t, testKey)
	s := testSettings(t, ModeOffline, srv, "giveup01")
	dir := offlineRun(t, s, 5)
	s.Upload.SyncAttempts = 3
	srv.FailNext(100, http.StatusServiceUnavailable)
	err := Sync(context.Background(), []string{dir}, s, nil)
	if err == nil || !strings.Contains(err.Error(), "after 3 attempts") || !strings.Contains(err.Error(), "503") {
		t.Fatalf("err = %v", err)
	}
	if n := len(srv.Requests()); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
	if st := localSync(t, dir); !strings.Contains(st.LastError, "503") {
		t.Errorf("sync.json does not record the failure: %+v", st)
	}
}

// A folder of runs syncs every run not yet completed; a run whose process
// died is completed as failed.
func TestSyncFolder(t *testing.T) {
	srv := wandbtest.NewServer(t, testKey)
	base := testSettings(t, ModeOffline, srv, "")
	var dirs []string
	for _, id := range []string{"folder01", "folder02", "folder03"} {
		s := base
		s.RunID = id
		dirs = append(dirs, offlineRun(t, s, 3))
	}
	// folder01 was uploaded already.
	if err := Sync(context.Background(), dirs[:1], base, nil); err != nil {
		t.Fatal(err)
	}
	// folder02's process died: no exit code, no end.
	var ri runInfo
	if err := readJSONFile(filepath.Join(dirs[1], runFileName), &ri); err != nil {
		t.Fatal(err)
	}
	ri.ExitCode, ri.EndTime = nil, nil
	if err := writeJSONFile(filepath.Join(dirs[1], runFileName), ri, true); err != nil {
		t.Fatal(err)
	}

	for _, arg := range []string{filepath.Join(base.Dir, "wandb"), base.Dir} {
		t.Run(filepath.Base(arg), func(t *testing.T) {
			log, logs := newLog()
			if err := Sync(context.Background(), []string{arg}, base, log); err != nil {
				t.Fatal(err)
			}
			for i, id := range []string{"folder01", "folder02", "folder03"} {
				run := serverRun(t, srv, wandbtest.DefaultEntity, "proj", id)
				want := 0
				if i == 1 {
					want = 1
				}
				if !run.Complete || run.CompleteCount != 1 || *run.ExitCode != want {
					t.Errorf("%s: complete=%v count=%d exit=%d, want exit %d once", id, run.Complete, run.CompleteCount, *run.ExitCode, want)
				}
			}
			if !strings.Contains(logs.String(), "already uploaded") {
				t.Errorf("no skip message:\n%s", logs)
			}
		})
	}
}

func TestSyncErrors(t *testing.T) {
	srv := wandbtest.NewServer(t, testKey)
	s := testSettings(t, ModeOffline, srv, "errors01")
	empty := t.TempDir()
	file := filepath.Join(empty, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	noKey := s
	noKey.APIKey = ""
	for _, tc := range []struct {
		name    string
		dirs    []string
		s       Settings
		wantErr string
	}{
		{"no API key", []string{empty}, noKey, "WANDB_API_KEY"},
		{"no runs", []string{empty}, s, "no W&B runs"},
		{"missing folder", []string{filepath.Join(empty, "nope")}, s, "no such file"},
		{"a file", []string{file}, s, "not a folder"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Sync(context.Background(), tc.dirs, tc.s, nil)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
			}
		})
	}
}

// An online run whose key is revoked mid-upload stops at once, tells the
// user to sync, and a sync later sends the rest without duplicates.
func TestRevokedOnlineThenSync(t *testing.T) {
	srv := wandbtest.NewServer(t, testKey)
	srv.UnauthorizedAfter(2) // the upsert and one batch
	s := testSettings(t, ModeOnline, srv, "revoked1")
	r, tp := startRun(t, Options{Settings: s}, true)
	emitFrames(t, tp, time.Now(), 20)
	shutdown(t, tp)
	res := finish(t, r, 10*time.Second, 0)
	if res.Completed || res.UploadErr == nil || !strings.Contains(res.UploadErr.Error(), "401") {
		t.Fatalf("UploadErr = %v", res.UploadErr)
	}
	if !strings.Contains(res.Message, SyncCommand+" "+r.Dir()) {
		t.Errorf("message %q does not say how to finish the upload", res.Message)
	}
	if n := srv.Count(func(r wandbtest.Request) bool { return r.Status == http.StatusUnauthorized }); n != 1 {
		t.Errorf("%d requests answered 401; a refusal must not be retried", n)
	}

	run := resync(t, srv, s, r.Dir(), "revoked1")
	if !run.Complete || run.CompleteCount != 1 {
		t.Errorf("complete=%v count=%d", run.Complete, run.CompleteCount)
	}
}
