package wandb

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// However far the writer falls behind, exports never wait: every line is
// either written or counted as dropped.
func TestFullQueueDropsAndCounts(t *testing.T) {
	s := testSettings(t, ModeOffline, nil, "queue001")
	r, err := Start(Options{Settings: s, QueueSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	const n = 2000
	withinWatchdog(t, time.Minute, "2000 exports into a queue of 1", func() {
		for i := range n {
			_ = r.MetricExporter().Export(context.Background(), eventMetrics(time.Now(), int64(i)))
		}
	})
	res := finish(t, r, 10*time.Second, 0)
	if res.Events+res.Dropped.QueueFull != n {
		t.Errorf("%d written + %d dropped, want %d in all", res.Events, res.Dropped.QueueFull, n)
	}
	// A queue of one cannot take 2000 exports as fast as they come: the
	// caller must not wait, so some are dropped.
	if res.Dropped.QueueFull == 0 {
		t.Error("nothing dropped: the exports waited for the writer instead of dropping")
	}
	if got := len(localEvents(t, r.Dir())); got != res.Events {
		t.Errorf("file has %d lines, result says %d", got, res.Events)
	}
}

func TestRunFolder(t *testing.T) {
	s := testSettings(t, ModeOffline, nil, "folder99")
	s.Entity = "team"
	cfg := map[string]any{"flags.batch": 2, "model.pose.sha256": "abc"}
	start := time.Date(2024, 12, 31, 23, 59, 58, 0, time.Local)
	r, err := Start(Options{Settings: s, Config: cfg, JobType: "video", now: fixedClock(start)})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(s.Dir, "wandb", "offline-run-20241231_235958-folder99"); r.Dir() != want {
		t.Errorf("run folder %s, want %s", r.Dir(), want)
	}
	ri, err := readRunInfo(r.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if ri.ExitCode != nil || ri.EndTime != nil {
		t.Errorf("run.json has an exit code before Finish: %+v", ri)
	}
	r.Finish(context.Background(), 4)
	ri, err = readRunInfo(r.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if ri.ID != "folder99" || ri.DisplayName != "test run" || ri.Entity != "team" || ri.Project != "proj" ||
		ri.Mode != ModeOffline || ri.JobType != "video" || ri.Program != "anonymize" || !ri.StartTime.Equal(start) {
		t.Errorf("run.json: %+v", ri)
	}
	if !jsonEqual(ri.Config, cfg) {
		t.Errorf("config %v, want %v", ri.Config, cfg)
	}
	if ri.ExitCode == nil || *ri.ExitCode != 4 || ri.EndTime == nil {
		t.Errorf("exit code %v, end %v", ri.ExitCode, ri.EndTime)
	}
	if _, err := os.Stat(filepath.Join(r.Dir(), syncFileName)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("an offline run has uploaded nothing, yet %s exists (err %v)", syncFileName, err)
	}
	if !regexp.MustCompile(`offline in .*; upload it with .anonymize wandb sync `).MatchString(r.Finish(context.Background(), 0).Message) {
		t.Errorf("offline message: %q", r.Finish(context.Background(), 0).Message)
	}
}

func TestStartFailsOnUnencodableConfig(t *testing.T) {
	s := testSettings(t, ModeOffline, nil, "badcfg01")
	if _, err := Start(Options{Settings: s, Config: map[string]any{"f": func() {}}}); err == nil {
		t.Fatal("Start accepted a config that cannot be encoded")
	}
}
