package batch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anonymize-dev/anonymize/internal/digest"
	"github.com/anonymize-dev/anonymize/internal/testutil"
	"github.com/anonymize-dev/anonymize/pipeline"
)

var threeVideos = map[string]string{
	"a.mp4":          okVideo + " a",
	"sub/b.webm":     okVideo + " b",
	"sub/deep/c.mov": okVideo + " c",
}

func TestRunProcessesEveryFile(t *testing.T) {
	in, out := testDirs(t, threeVideos)
	p := newFakeProc()
	var (
		mu       sync.Mutex
		events   []string
		frames   = map[string]int{}
		planned  int
		inHook   bool
		overlaps int
	)
	enter := func() func() {
		mu.Lock()
		if inHook {
			overlaps++
		}
		inHook = true
		mu.Unlock()
		return func() { mu.Lock(); inHook = false; mu.Unlock() }
	}
	hooks := Hooks{
		Planned: func(files []FileReport) { defer enter()(); planned = len(files) },
		FileStarted: func(it Item, n int) {
			defer enter()()
			events = append(events, "start "+it.Rel)
			if n != fakeFrames {
				t.Errorf("FileStarted(%s, %d): want the probed %d frames", it.Rel, n, fakeFrames)
			}
		},
		Frame:        func(it Item, fr pipeline.FrameResult) { defer enter()(); frames[it.Rel]++ },
		FileFinished: func(f FileReport) { defer enter()(); events = append(events, "finish "+f.Input+" "+string(f.Status)) },
	}
	opts := testOptions(in, out)
	opts.Jobs = 2
	sum := runOK(t, opts, p, hooks)

	if sum.Done != 3 || sum.Failed != 0 || sum.Skipped != 0 || sum.Pending != 0 {
		t.Errorf("summary %+v: want 3 done", sum.Totals)
	}
	if sum.Totals.Frames != 3*fakeFrames || sum.Totals.People != 3*(0+1+2) {
		t.Errorf("frames %d, people %d; want %d, %d", sum.Totals.Frames, sum.Totals.People, 3*fakeFrames, 9)
	}
	want := map[string]string{
		"a.mp4":          wantOutput(threeVideos["a.mp4"]),
		"sub/b.mp4":      wantOutput(threeVideos["sub/b.webm"]),
		"sub/deep/c.mov": wantOutput(threeVideos["sub/deep/c.mov"]),
	}
	if got := outputTree(t, out); !maps.Equal(got, want) {
		t.Errorf("output tree %v, want %v", got, want)
	}
	if planned != 3 || len(events) != 6 || overlaps != 0 {
		t.Errorf("hooks: planned %d, events %v, overlapping calls %d; want 3, 6 events, 0", planned, events, overlaps)
	}
	if len(frames) != 3 {
		t.Errorf("Frame hook heard from %d files, want 3: %v", len(frames), frames)
	}
	for rel, n := range frames {
		if n != fakeFrames {
			t.Errorf("Frame hook called %d times for %s, want %d", n, rel, fakeFrames)
		}
	}
	for _, d := range p.tempDirs {
		if d != filepath.Join(out, ".anonymize", "tmp") {
			t.Errorf("Job.TempDir %s, want OUT_DIR/.anonymize/tmp", d)
		}
	}

	r := readReport(t, sum.ReportPath)
	validateReport(t, sum.ReportPath)
	checkTotals(t, r)
	if r.RunStatus != RunFinished || r.SettingsHash != SettingsHash(opts.Config, p.models) || r.Settings["crf"] != "18" ||
		len(r.Models) != 2 || r.Device != "cpu" || r.ToolVersion != "test" {
		t.Errorf("report header: %+v", r)
	}
	for _, f := range r.Files {
		sum, size, err := digest.FileSHA256(filepath.Join(out, f.Output))
		if err != nil || f.OutputSHA256 != sum || f.OutputSize != size {
			t.Errorf("%s: report says %d bytes sha256 %s; file has %d, %s (%v)", f.Input, f.OutputSize, f.OutputSHA256, size, sum, err)
		}
		if f.Video == nil || f.Video.FPS != "30000/1001" || f.People == nil || f.People.Max != 2 || f.People.FramesWithPeople != 2 ||
			f.Masks == nil || f.Masks.Nose != 3 {
			t.Errorf("%s: stats missing from the report: %+v", f.Input, f)
		}
	}
	if left := testutil.DirNames(t, filepath.Join(out, ".anonymize", "tmp")); len(left) != 0 {
		t.Errorf("tmp folder holds %v after a clean run", left)
	}
}

func TestRunResume(t *testing.T) {
	files := map[string]string{
		"a.mp4":     okVideo + " a",
		"b.mp4":     okVideo + " b",
		"sub/c.mkv": okVideo + " c",
		"sub/d.ts":  okVideo + " d",
	}
	in, out := testDirs(t, files)
	contents := maps.Clone(files)
	p := newFakeProc()
	opts := testOptions(in, out)
	runOK(t, opts, p, Hooks{})
	if got := p.callCounts(); len(got) != 4 {
		t.Fatalf("first run processed %v", got)
	}

	steps := []struct {
		name   string
		change func(t *testing.T, o *Options)
		want   map[string]string // input -> status/reason
	}{
		{
			name: "nothing changed",
			want: map[string]string{"a.mp4": "skipped/already_done", "b.mp4": "skipped/already_done",
				"sub/c.mkv": "skipped/already_done", "sub/d.ts": "skipped/already_done"},
		},
		{
			name: "input touched",
			change: func(t *testing.T, _ *Options) {
				mtime := time.Now().Add(-time.Hour)
				if err := os.Chtimes(filepath.Join(in, "b.mp4"), mtime, mtime); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string]string{"a.mp4": "skipped/already_done", "b.mp4": "done/input_changed",
				"sub/c.mkv": "skipped/already_done", "sub/d.ts": "skipped/already_done"},
		},
		{
			name: "input rewritten with another size",
			change: func(t *testing.T, _ *Options) {
				contents["sub/c.mkv"] = okVideo + " c, longer"
				writeTree(t, in, map[string]string{"sub/c.mkv": contents["sub/c.mkv"]})
			},
			want: map[string]string{"a.mp4": "skipped/already_done", "b.mp4": "skipped/already_done",
				"sub/c.mkv": "done/input_changed", "sub/d.ts": "skipped/already_done"},
		},
		{
			name: "output deleted",
			change: func(t *testing.T, _ *Options) {
				if err := os.Remove(filepath.Join(out, "sub", "d.mp4")); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string]string{"a.mp4": "skipped/already_done", "b.mp4": "skipped/already_done",
				"sub/c.mkv": "skipped/already_done", "sub/d.ts": "done/output_missing"},
		},
		{
			name: "output truncated",
			change: func(t *testing.T, _ *Options) {
				if err := os.Truncate(filepath.Join(out, "a.mp4"), 5); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string]string{"a.mp4": "done/output_changed", "b.mp4": "skipped/already_done",
				"sub/c.mkv": "skipped/already_done", "sub/d.ts": "skipped/already_done"},
		},
		{
			name:   "settings changed",
			change: func(_ *testing.T, o *Options) { o.Config.CRF = 23 },
			want: map[string]string{"a.mp4": "done/settings_changed", "b.mp4": "done/settings_changed",
				"sub/c.mkv": "done/settings_changed", "sub/d.ts": "done/settings_changed"},
		},
		{
			name:   "throughput settings do not redo",
			change: func(_ *testing.T, o *Options) { o.Config.PoseBatch = 3; o.Jobs = 3 },
			want: map[string]string{"a.mp4": "skipped/already_done", "b.mp4": "skipped/already_done",
				"sub/c.mkv": "skipped/already_done", "sub/d.ts": "skipped/already_done"},
		},
		{
			name:   "force",
			change: func(_ *testing.T, o *Options) { o.Force = true },
			want: map[string]string{"a.mp4": "done/forced", "b.mp4": "done/forced",
				"sub/c.mkv": "done/forced", "sub/d.ts": "done/forced"},
		},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.change != nil {
				st.change(t, &opts)
			}
			before := p.callCounts()
			sum := runOK(t, opts, p, Hooks{})
			opts.Force = false
			if got := statuses(sum.Files); !maps.Equal(got, st.want) {
				t.Errorf("statuses %v, want %v", got, st.want)
			}
			after := p.callCounts()
			for rel, s := range st.want {
				base := filepath.Base(rel)
				called := after[base] - before[base]
				if wantCalls := map[bool]int{true: 1, false: 0}[strings.HasPrefix(s, "done")]; called != wantCalls {
					t.Errorf("%s processed %d times, want %d", rel, called, wantCalls)
				}
			}
			validateReport(t, sum.ReportPath)
			checkTotals(t, readReport(t, sum.ReportPath))
			for rel, content := range contents {
				if got := outputTree(t, out)[outputRel(rel)]; got != wantOutput(content) {
					t.Errorf("%s: output %q, want the fake's output for %q", rel, got, content)
				}
			}
		})
	}
}

func TestRunCarriesForwardReportEntries(t *testing.T) {
	in, out := testDirs(t, threeVideos)
	opts := testOptions(in, out)
	first := runOK(t, opts, newFakeProc(), Hooks{})
	second := runOK(t, opts, newFakeProc(), Hooks{})
	for i, f := range second.Files {
		was := first.Files[i]
		if f.Status != StatusSkipped || f.Frames != was.Frames || f.People == nil || *f.People != *was.People ||
			f.Started == nil || !f.Started.Equal(*was.Started) {
			t.Errorf("%s: skipped entry %+v does not carry the first run's %+v", f.Input, f, was)
		}
	}
	if second.Totals.FramesInOutputs != first.Totals.Frames || second.Totals.Frames != 0 {
		t.Errorf("second run: frames %d, in outputs %d; want 0, %d", second.Totals.Frames, second.Totals.FramesInOutputs, first.Totals.Frames)
	}

	// Without the earlier report, the state still tells what is done.
	if err := os.Remove(second.ReportPath); err != nil {
		t.Fatal(err)
	}
	third := runOK(t, opts, newFakeProc(), Hooks{})
	for i, f := range third.Files {
		was := first.Files[i]
		if f.Status != StatusSkipped || f.OutputSHA256 != was.OutputSHA256 || f.OutputSize != was.OutputSize || f.Finished == nil {
			t.Errorf("%s: entry from the state %+v, want sha256 and size of %+v", f.Input, f, was)
		}
	}
	validateReport(t, third.ReportPath)
}

func TestRunTornStateLine(t *testing.T) {
	in, out := testDirs(t, threeVideos)
	opts := testOptions(in, out)
	runOK(t, opts, newFakeProc(), Hooks{})
	statePath := filepath.Join(out, ".anonymize", "state.jsonl")
	data, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("state has %d lines, want 3:\n%s", len(lines), data)
	}
	// A kill in the middle of appending the last file's line.
	lastInput := readStateInputs(t, lines[2]+"\n")
	torn := strings.Join(lines[:2], "") + lines[2][:len(lines[2])/2]
	if err := os.WriteFile(statePath, []byte(torn), 0o644); err != nil {
		t.Fatal(err)
	}
	p := newFakeProc()
	sum := runOK(t, opts, p, Hooks{})
	for _, f := range sum.Files {
		want := StatusSkipped
		if f.Input == lastInput {
			want = StatusDone // its line was lost, so it is not done
		}
		if f.Status != want {
			t.Errorf("%s: %s, want %s", f.Input, f.Status, want)
		}
	}
	data, err = os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	entries, complete, bad := parseState(data)
	if bad != 0 || complete != len(data) || len(entries) != 3 {
		t.Errorf("state after the repair: %d entries, %d bad lines, %d of %d bytes complete:\n%s", len(entries), bad, complete, len(data), data)
	}
}

func readStateInputs(t *testing.T, line string) string {
	t.Helper()
	entries, _, bad := parseState([]byte(line))
	if bad != 0 || len(entries) != 1 {
		t.Fatalf("line %q: %d entries, %d bad", line, len(entries), bad)
	}
	return entries[0].Input
}

func TestParseState(t *testing.T) {
	good := `{"input":"a.mp4","input_size":1,"input_mtime":"2024-01-01T00:00:00Z","output":"a.mp4","output_size":2,"output_sha256":"x","settings_hash":"h","finished":"2024-01-02T00:00:00Z"}`
	tests := []struct {
		name          string
		data          string
		entries, bad  int
		completeBytes int
	}{
		{"empty", "", 0, 0, 0},
		{"one line", good + "\n", 1, 0, len(good) + 1},
		{"torn last line", good + "\n" + good[:20], 1, 0, len(good) + 1},
		{"torn only line", good[:40], 0, 0, 0},
		{"complete but garbled line", good + "\n{garbage\n" + good + "\n", 2, 1, 2*len(good) + 11},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, complete, bad := parseState([]byte(tt.data))
			if len(entries) != tt.entries || bad != tt.bad || complete != tt.completeBytes {
				t.Errorf("got %d entries, %d bad, %d complete bytes; want %d, %d, %d",
					len(entries), bad, complete, tt.entries, tt.bad, tt.completeBytes)
			}
		})
	}
}

func TestOpenStateRepairsTornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.jsonl")
	first := StateEntry{Input: "a.mp4", Output: "a.mp4", OutputSize: 1}
	b, _ := json.Marshal(first)
	// A torn write longer than the line that will follow it.
	torn := string(b) + "\n" + `{"input":"` + strings.Repeat("long/", 100)
	if err := os.WriteFile(path, []byte(torn), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := openState(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Append(StateEntry{Input: "b.mp4", Output: "b.mp4"}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	entries, complete, bad := parseState(data)
	if len(entries) != 2 || bad != 0 || complete != len(data) || entries[1].Input != "b.mp4" {
		t.Errorf("after repair and append: %d entries, %d bad, %d of %d bytes complete:\n%s", len(entries), bad, complete, len(data), data)
	}
}

func TestRunRemovesLeftoversOfKilledRun(t *testing.T) {
	in, out := testDirs(t, map[string]string{"a.mp4": okVideo})
	tmp := filepath.Join(out, ".anonymize", "tmp")
	writeTree(t, tmp, map[string]string{".a.mp4.anonymize-0123.mp4": "half a video", "junk/x": "?"})
	runOK(t, testOptions(in, out), newFakeProc(), Hooks{})
	if left := testutil.DirNames(t, tmp); len(left) != 0 {
		t.Errorf("tmp folder still holds %v", left)
	}
}

func TestRunFailureIsolation(t *testing.T) {
	in, out := testDirs(t, map[string]string{
		"a.mp4": okVideo, "b.mp4": corruptVideo, "c.mp4": okVideo, "d.mp4": truncated, "e.mp4": okVideo,
	})
	var finished []string
	hooks := Hooks{FileFinished: func(f FileReport) { finished = append(finished, f.Input+":"+string(f.Status)) }}
	sum := runOK(t, testOptions(in, out), newFakeProc(), hooks)
	want := map[string]string{"a.mp4": "done/new", "b.mp4": "failed/new", "c.mp4": "done/new", "d.mp4": "failed/new", "e.mp4": "done/new"}
	if got := statuses(sum.Files); !maps.Equal(got, want) {
		t.Errorf("statuses %v, want %v", got, want)
	}
	if sum.Failed != 2 || sum.Done != 3 || sum.RunStatus != RunFinished {
		t.Errorf("summary: failed %d, done %d, %s; want 2, 3, finished", sum.Failed, sum.Done, sum.RunStatus)
	}
	if len(finished) != 5 {
		t.Errorf("FileFinished calls %v, want 5", finished)
	}
	for _, f := range sum.Files {
		if f.Status == StatusFailed && !strings.Contains(f.Error, f.Input) {
			t.Errorf("%s: error %q does not name the file", f.Input, f.Error)
		}
		if f.Input == "d.mp4" && (f.Frames != 2 || f.Video == nil) {
			t.Errorf("truncated file: %d frames, video %v; want the 2 frames before the failure", f.Frames, f.Video)
		}
	}
	if got := outputTree(t, out); len(got) != 3 || got["b.mp4"] != "" || got["d.mp4"] != "" {
		t.Errorf("output tree %v: want only the 3 done files", got)
	}
	validateReport(t, sum.ReportPath)

	var text bytes.Buffer
	if err := sum.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"failed files:", "b.mp4", "not a video (no video stream)…", "d.mp4", "end of file in the middle"} {
		if !strings.Contains(text.String(), w) {
			t.Errorf("summary text lacks %q:\n%s", w, text.String())
		}
	}
	if strings.Contains(text.String(), "ffprobe said") {
		t.Errorf("summary text shows more than an error's first line:\n%s", text.String())
	}

	// A re-run retries the failed files only.
	p := newFakeProc()
	sum = runOK(t, testOptions(in, out), p, Hooks{})
	if got := p.callCounts(); !maps.Equal(got, map[string]int{"b.mp4": 1, "d.mp4": 1}) {
		t.Errorf("re-run processed %v, want the failed files", got)
	}
	if sum.Failed != 2 || sum.Skipped != 3 {
		t.Errorf("re-run: %d failed, %d skipped", sum.Failed, sum.Skipped)
	}
}

func TestRunFailFast(t *testing.T) {
	in, out := testDirs(t, map[string]string{"a.mp4": okVideo, "b.mp4": corruptVideo, "c.mp4": okVideo, "d.mp4": okVideo})
	opts := testOptions(in, out)
	opts.FailFast = true
	p := newFakeProc()
	sum := runOK(t, opts, p, Hooks{})
	if got := p.callCounts(); got["c.mp4"]+got["d.mp4"] != 0 {
		t.Errorf("processed %v after the failure", got)
	}
	want := map[string]string{"a.mp4": "done/new", "b.mp4": "failed/new", "c.mp4": "pending/new", "d.mp4": "pending/new"}
	if got := statuses(sum.Files); !maps.Equal(got, want) {
		t.Errorf("statuses %v, want %v", got, want)
	}
	if sum.RunStatus != RunStopped || sum.Failed == 0 {
		t.Errorf("run status %s, %d failed; want stopped, some failed", sum.RunStatus, sum.Failed)
	}
	validateReport(t, sum.ReportPath)
}

func TestRunFailFastCancelsRunningFiles(t *testing.T) {
	in, out := testDirs(t, map[string]string{"a.mp4": blocking, "b.mp4": blocking, "c.mp4": corruptVideo, "d.mp4": okVideo})
	opts := testOptions(in, out)
	opts.FailFast, opts.Jobs = true, 3
	p := newFakeProc()
	// c fails while a and b block; only cancellation ends them, so a Run
	// that does not cancel would never return.
	res := startRun(context.Background(), opts, p, Hooks{}).wait(t)
	if res.err != nil {
		t.Fatalf("Run: %v", res.err)
	}
	sum := res.sum
	want := map[string]string{"a.mp4": "pending/new", "b.mp4": "pending/new", "c.mp4": "failed/new", "d.mp4": "pending/new"}
	if got := statuses(sum.Files); !maps.Equal(got, want) {
		t.Errorf("statuses %v, want %v", got, want)
	}
	if got := outputTree(t, out); len(got) != 0 {
		t.Errorf("output tree %v, want empty", got)
	}
	if left := testutil.DirNames(t, filepath.Join(out, ".anonymize", "tmp")); len(left) != 0 {
		t.Errorf("aborted files left %v in the tmp folder", left)
	}
}

func TestRunJobsRunConcurrently(t *testing.T) {
	const jobs = 3
	files := map[string]string{}
	for _, n := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		files["v/"+n+".mp4"] = blocking + " " + n
	}
	in, out := testDirs(t, files)
	opts := testOptions(in, out)
	opts.Jobs = jobs
	p := newFakeProc()
	run := startRun(context.Background(), opts, p, Hooks{})
	p.waitEntered(t, jobs)
	// With jobs videos in flight, the report on disk shows them running.
	r := readReport(t, filepath.Join(out, "anonymize-report.json"))
	validateReport(t, filepath.Join(out, "anonymize-report.json"))
	if r.RunStatus != RunRunning || r.Totals.Files.Running != jobs || r.Totals.Files.Pending != len(files)-jobs {
		t.Errorf("report at start: %s, %+v", r.RunStatus, r.Totals.Files)
	}
	close(p.release)
	res := run.wait(t)
	if res.err != nil {
		t.Fatal(res.err)
	}
	p.mu.Lock()
	maxInFlight := p.maxInFlight
	p.mu.Unlock()
	if maxInFlight != jobs {
		t.Errorf("%d videos in flight at most, want %d", maxInFlight, jobs)
	}
	if res.sum.Done != len(files) {
		t.Errorf("%d done, want %d", res.sum.Done, len(files))
	}
	final := readReport(t, res.sum.ReportPath)
	validateReport(t, res.sum.ReportPath)
	checkTotals(t, final)
	if final.Totals.Files.Done != len(files) || final.RunStatus != RunFinished {
		t.Errorf("final report: %s, %+v", final.RunStatus, final.Totals.Files)
	}
}

func TestRunReportAfterCrash(t *testing.T) {
	// a is done, b failed, c skipped (from an earlier run), d in flight
	// and e not started when the process "dies": the report on disk at
	// that moment must be valid and say so.
	in, out := testDirs(t, map[string]string{"c.mp4": okVideo})
	opts := testOptions(in, out)
	runOK(t, opts, newFakeProc(), Hooks{})
	writeTree(t, in, map[string]string{"a.mp4": okVideo, "b.mp4": corruptVideo, "d.mp4": blocking, "e.mp4": okVideo})

	p := newFakeProc()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	run := startRun(ctx, opts, p, Hooks{})
	p.waitEntered(t, 1)
	reportPath := filepath.Join(out, "anonymize-report.json")
	crashed, err := os.ReadFile(reportPath)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	run.wait(t)

	if err := validateReportJSON(t, crashed); err != nil {
		t.Errorf("report written mid-run does not match the schema: %v\n%s", err, crashed)
	}
	var snap Report
	if err := json.Unmarshal(crashed, &snap); err != nil {
		t.Fatal(err)
	}
	checkTotals(t, snap)
	want := map[string]string{"a.mp4": "done/new", "b.mp4": "failed/new", "c.mp4": "skipped/already_done", "d.mp4": "running/new", "e.mp4": "pending/new"}
	if got := statuses(snap.Files); !maps.Equal(got, want) {
		t.Errorf("report mid-run: %v, want %v", got, want)
	}
	if snap.RunStatus != RunRunning {
		t.Errorf("report mid-run says %s", snap.RunStatus)
	}
}

func TestRunCancelThenResume(t *testing.T) {
	in, out := testDirs(t, map[string]string{
		"a.mp4": okVideo, "b.mp4": blocking, "c.mp4": blocking, "d.mp4": okVideo, "e.mp4": okVideo,
	})
	opts := testOptions(in, out)
	opts.Jobs = 2
	p := newFakeProc()
	p.leaveTemp = true // as if the encoder had been killed
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	run := startRun(ctx, opts, p, Hooks{})
	p.waitEntered(t, 2) // b and c in flight, a done
	cancel()
	res := run.wait(t)
	if !errors.Is(res.err, context.Canceled) {
		t.Fatalf("Run returned %v, want an interruption (context.Canceled)", res.err)
	}
	want := map[string]string{"a.mp4": "done/new", "b.mp4": "pending/new", "c.mp4": "pending/new", "d.mp4": "pending/new", "e.mp4": "pending/new"}
	if got := statuses(res.sum.Files); !maps.Equal(got, want) {
		t.Errorf("statuses %v, want %v", got, want)
	}
	if got := outputTree(t, out); !maps.Equal(got, map[string]string{"a.mp4": wantOutput(okVideo)}) {
		t.Errorf("output tree after the interruption: %v; want only a.mp4, complete", got)
	}
	if left := testutil.DirNames(t, filepath.Join(out, ".anonymize", "tmp")); len(left) != 2 {
		t.Errorf("tmp folder %v: the fake should have left two partial files", left)
	}
	r := readReport(t, res.sum.ReportPath)
	validateReport(t, res.sum.ReportPath)
	if r.RunStatus != RunInterrupted {
		t.Errorf("report run status %s, want interrupted", r.RunStatus)
	}
	var text bytes.Buffer
	res.sum.WriteText(&text)
	if !strings.Contains(text.String(), "interrupted") {
		t.Errorf("summary text does not say it was interrupted:\n%s", text.String())
	}

	// The re-run does the rest only, and cleans the tmp folder.
	writeTree(t, in, map[string]string{"b.mp4": okVideo + " b", "c.mp4": okVideo + " c"})
	p2 := newFakeProc()
	sum := runOK(t, opts, p2, Hooks{})
	if got := p2.callCounts(); !maps.Equal(got, map[string]int{"b.mp4": 1, "c.mp4": 1, "d.mp4": 1, "e.mp4": 1}) {
		t.Errorf("re-run processed %v", got)
	}
	if sum.Done != 4 || sum.Skipped != 1 || sum.Failed != 0 {
		t.Errorf("re-run: %d done, %d skipped", sum.Done, sum.Skipped)
	}
	if left := testutil.DirNames(t, filepath.Join(out, ".anonymize", "tmp")); len(left) != 0 {
		t.Errorf("tmp folder still holds %v", left)
	}
}

func TestRunDryRun(t *testing.T) {
	in, out := testDirs(t, threeVideos)
	opts := testOptions(in, out)
	opts.DryRun = true
	p := newFakeProc()
	sum := runOK(t, opts, p, Hooks{})
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dry run created OUT_DIR (%v)", err)
	}
	if sum.Pending != 3 || len(p.callCounts()) != 0 || sum.ReportPath != "" {
		t.Errorf("dry run: %d pending, calls %v, report %q", sum.Pending, p.callCounts(), sum.ReportPath)
	}

	opts.DryRun = false
	runOK(t, opts, p, Hooks{})
	writeTree(t, in, map[string]string{"new.mp4": okVideo})
	opts.DryRun = true
	sum = runOK(t, opts, p, Hooks{})
	want := map[string]string{"a.mp4": "skipped/already_done", "new.mp4": "pending/new",
		"sub/b.webm": "skipped/already_done", "sub/deep/c.mov": "skipped/already_done"}
	if got := statuses(sum.Files); !maps.Equal(got, want) {
		t.Errorf("plan %v, want %v", got, want)
	}
	if got := p.callCounts()["new.mp4"]; got != 0 {
		t.Errorf("dry run processed new.mp4")
	}
	var text bytes.Buffer
	if err := sum.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"dry run: 4 files, 1 to process, 3 already done", "process  new.mp4", "skip     a.mp4"} {
		if !strings.Contains(text.String(), w) {
			t.Errorf("plan text lacks %q:\n%s", w, text.String())
		}
	}
}

func TestRunOptionErrors(t *testing.T) {
	in, out := testDirs(t, threeVideos)
	tests := []struct {
		name   string
		change func(o *Options)
		p      Processor
	}{
		{"shard index out of range", func(o *Options) { o.Shard = ShardSpec{Index: 2, Count: 2} }, newFakeProc()},
		{"output is the input", func(o *Options) { o.OutDir = in }, newFakeProc()},
		{"bad pattern", func(o *Options) { o.Include = []string{"["} }, newFakeProc()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOptions(in, out)
			tt.change(&opts)
			_, err := Run(context.Background(), opts, tt.p, Hooks{})
			if !errors.Is(err, ErrUsage) {
				t.Errorf("got %v, want a usage error", err)
			}
		})
	}
	_, err := Run(context.Background(), testOptions(in, out), undescribed{}, Hooks{})
	if err == nil || !strings.Contains(err.Error(), "Describer") {
		t.Errorf("processor that cannot describe its models: %v", err)
	}
}

type undescribed struct{}

func (undescribed) ProcessVideo(context.Context, pipeline.Job, pipeline.Hooks) (pipeline.Result, error) {
	return pipeline.Result{}, errors.New("unreachable")
}
