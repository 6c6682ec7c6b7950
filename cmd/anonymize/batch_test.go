package main

import (
	"bufio"
	"context"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anonymize-dev/anonymize/batch"
	"github.com/anonymize-dev/anonymize/internal/synthclip"
	"github.com/anonymize-dev/anonymize/internal/testutil"
)

var batchClip struct {
	sync.Once
	path   string
	frames int
	err    error
}

// shortClip is a small scene clip (with people and audio) for batch trees.
func shortClip(t *testing.T) (string, int) {
	t.Helper()
	ffmpeg := testutil.Tool(t, "ffmpeg")
	c := &batchClip
	c.Do(func() {
		dir, err := sharedSubdir("batch-clip")
		if err != nil {
			c.err = err
			return
		}
		scene := synthclip.DefaultScene(480, 360, 16)
		c.path, c.frames = filepath.Join(dir, "clip.mp4"), scene.Frames
		c.err = scene.Write(context.Background(), c.path, ffmpeg)
	})
	if c.err != nil {
		t.Fatal(c.err)
	}
	return c.path, c.frames
}

// writeTree lays out files under root: path -> content, where "<clip>" is
// the short clip, "<cut>" the clip cut in half.
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	clip, _ := shortClip(t)
	data, err := os.ReadFile(clip)
	if err != nil {
		t.Fatal(err)
	}
	for rel, content := range files {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		switch content {
		case "<clip>":
			writeFile(t, p, string(data))
		case "<cut>":
			writeFile(t, p, string(data[:len(data)/2]))
		default:
			writeFile(t, p, content)
		}
	}
}

func readReport(t *testing.T, path string) batch.Report {
	t.Helper()
	r, err := batch.ReadReport(path)
	if err != nil {
		t.Fatal(err)
	}
	testutil.CheckJSONFile(t, batch.ReportSchema, path)
	return r
}

func statuses(r batch.Report) map[string]string {
	out := map[string]string{}
	for _, f := range r.Files {
		out[f.Input] = string(f.Status)
	}
	return out
}

// outputTree lists the files of the output tree, without the .anonymize
// bookkeeping folder and the reports.
func outputTree(t *testing.T, out string) []string {
	t.Helper()
	var files []string
	filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(out, p)
		if d.IsDir() && rel == ".anonymize" {
			return filepath.SkipDir
		}
		if !d.IsDir() && !strings.HasPrefix(rel, "anonymize-report") {
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(files)
	return files
}

// TestBatchTree: good clips in nested folders are done; a truncated clip,
// a text file named .mp4 and an unreadable file are reported and skipped;
// the exit status says some failed; the report validates.
func TestBatchTree(t *testing.T) {
	_, frames := shortClip(t)
	u := newUnprivileged(t)
	in, out := filepath.Join(u.dir, "in"), filepath.Join(u.dir, "out")
	writeTree(t, in, map[string]string{
		"day1/cam1/a.mp4":     "<clip>",
		"day1/cam2/b.mkv":     "<clip>",
		"day2/c.mov":          "<clip>",
		"day2/broken/cut.mp4": "<cut>",
		"day2/notes.mp4":      "these are notes, not a video",
		"day2/locked.mp4":     "<clip>",
		"day2/readme.txt":     "not selected",
		"day3/deep/er/d.avi":  "<clip>",
		"day3/deep/er/e.webm": "<clip>",
	})
	os.Chmod(filepath.Join(in, "day2", "locked.mp4"), 0o000)
	os.MkdirAll(out, 0o777)
	os.Chmod(out, 0o777)

	r := u.run(t, append(append([]string{"batch", "--jobs", "2"}, u.flags()...), in, out)...)
	if r.code != 3 {
		t.Fatalf("exit %d, want 3 (some files failed)\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	rep := readReport(t, filepath.Join(out, "anonymize-report.json"))
	want := map[string]string{
		"day1/cam1/a.mp4": "done", "day1/cam2/b.mkv": "done", "day2/c.mov": "done", "day3/deep/er/d.avi": "done",
		"day3/deep/er/e.webm": "done", "day2/broken/cut.mp4": "failed", "day2/notes.mp4": "failed", "day2/locked.mp4": "failed",
	}
	if got := statuses(rep); !maps.Equal(got, want) {
		t.Errorf("statuses %v, want %v", got, want)
	}
	for _, f := range rep.Files {
		switch f.Status {
		case batch.StatusDone:
			if f.Frames != frames || f.OutputSHA256 == "" || f.People == nil || f.People.Max == 0 || f.Video == nil {
				t.Errorf("%s: frames %d, sha256 %q, people %+v: want %d frames, a sha256 and people", f.Input, f.Frames, f.OutputSHA256, f.People, frames)
			}
		case batch.StatusFailed:
			if f.Error == "" {
				t.Errorf("%s failed without an error message", f.Input)
			}
		}
	}
	wantTree := []string{"day1/cam1/a.mp4", "day1/cam2/b.mkv", "day2/c.mov", "day3/deep/er/d.avi", "day3/deep/er/e.mp4"}
	if got := outputTree(t, out); !slices.Equal(got, wantTree) {
		t.Errorf("output tree %v, want %v (no partial or failed outputs)", got, wantTree)
	}
	if rep.Totals.Files.Done != 5 || rep.Totals.Files.Failed != 3 || rep.Totals.Frames != 5*frames {
		t.Errorf("totals %+v", rep.Totals)
	}
	if !strings.Contains(r.stdout, "failed") || !strings.Contains(r.stderr, "3 of 8 files failed") {
		t.Errorf("no human summary of the failures:\nstdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}

	// Again: the done files are skipped, the failed ones retried (and
	// failing again).
	r = u.run(t, append(append([]string{"batch", "-q"}, u.flags()...), in, out)...)
	if r.code != 3 {
		t.Fatalf("second run: exit %d\n%s", r.code, r.stderr)
	}
	rep = readReport(t, filepath.Join(out, "anonymize-report.json"))
	for in, st := range statuses(rep) {
		if want[in] == "done" && st != "skipped" {
			t.Errorf("second run: %s is %s, want skipped (already done)", in, st)
		}
	}

	// Fail fast stops at the first failure (exit 3, nothing else done).
	out2 := filepath.Join(u.dir, "out2")
	os.MkdirAll(out2, 0o777)
	os.Chmod(out2, 0o777)
	r = u.run(t, append(append([]string{"batch", "-q", "--jobs", "1", "--fail-fast", "--include", "day2/**"}, u.flags()...), in, out2)...)
	if r.code != 3 {
		t.Errorf("fail-fast: exit %d, want 3\n%s", r.code, r.stderr)
	}
	// Files go in path order, so the broken one is first.
	rep = readReport(t, filepath.Join(out2, "anonymize-report.json"))
	wantStopped := map[string]string{
		"day2/broken/cut.mp4": "failed", "day2/c.mov": "pending", "day2/locked.mp4": "pending", "day2/notes.mp4": "pending", "day2/readme.txt": "pending",
	}
	if got := statuses(rep); rep.RunStatus != batch.RunStopped || !maps.Equal(got, wantStopped) {
		t.Errorf("fail-fast report: run %s, %v; want %s, %v", rep.RunStatus, got, batch.RunStopped, wantStopped)
	}
	if got := outputTree(t, out2); len(got) != 0 {
		t.Errorf("fail-fast wrote %v, want nothing", got)
	}
}

// TestBatchKilledAndResumed kills a batch with SIGKILL mid-run: the output
// tree holds only complete videos, and a re-run does only what is left.
func TestBatchKilledAndResumed(t *testing.T) {
	detector, pose, _, _ := e2eFixtures(t)
	_, frames := shortClip(t)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	files := map[string]string{}
	for _, name := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		files["set/"+name+".mp4"] = "<clip>"
	}
	writeTree(t, in, files)
	args := append([]string{"batch", "-q", "--device", "cpu", "--jobs", "1"}, modelFlags(detector, pose)...)
	args = append(args, in, out)

	// Kill once a few files are recorded done, while another is encoding.
	cmd, _ := startBatchUntil(t, args, out, 3)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	done := countLines(filepath.Join(out, ".anonymize", "state.jsonl"))
	if done >= len(files) {
		t.Fatalf("all %d files were done before the kill: nothing to resume", done)
	}
	// Only complete videos in the output tree.
	before := map[string]time.Time{}
	for _, rel := range outputTree(t, out) {
		p := filepath.Join(out, rel)
		if n := countFrames(t, p); n != frames {
			t.Errorf("after SIGKILL, %s has %d frames, want %d: a partial file in the output tree", rel, n, frames)
		}
		st, _ := os.Stat(p)
		before[rel] = st.ModTime()
	}
	t.Logf("killed with %d of %d files done and %d outputs in place", done, len(files), len(before))

	r := run(t, nil, args...)
	if r.code != 0 {
		t.Fatalf("re-run: exit %d\n%s", r.code, r.stderr)
	}
	rep := readReport(t, filepath.Join(out, "anonymize-report.json"))
	redone := 0
	for _, f := range rep.Files {
		switch f.Status {
		case batch.StatusSkipped:
		case batch.StatusDone:
			redone++
		default:
			t.Errorf("%s is %s after the re-run", f.Input, f.Status)
		}
	}
	if rep.Totals.Files.Skipped != done || redone != len(files)-done {
		t.Errorf("re-run skipped %d and did %d; want %d skipped (done before the kill) and %d done",
			rep.Totals.Files.Skipped, redone, done, len(files)-done)
	}
	// What was finished before the kill was not touched.
	for _, f := range rep.Files {
		if f.Status != batch.StatusSkipped {
			continue
		}
		st, err := os.Stat(filepath.Join(out, f.Output))
		if err != nil || !st.ModTime().Equal(before[f.Output]) {
			t.Errorf("%s was rewritten although it was done before the kill", f.Output)
		}
	}
	if got := outputTree(t, out); len(got) != len(files) {
		t.Errorf("output tree %v, want %d files", got, len(files))
	}
	if left, _ := os.ReadDir(filepath.Join(out, ".anonymize", "tmp")); len(left) != 0 {
		t.Errorf("partial files left in the staging folder: %v", left)
	}
}

// startBatchUntil starts the binary with args (a batch into out) and
// returns once n files are recorded done and another has had time to
// start encoding.
func startBatchUntil(t *testing.T, args []string, out string, n int) (*exec.Cmd, *strings.Builder) {
	t.Helper()
	cmd := exec.Command(anonymizeBin(t), args...)
	cmd.Env = testEnv(t)
	var errOut strings.Builder
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(out, ".anonymize", "state.jsonl")
	deadline := time.Now().Add(2 * time.Minute)
	for countLines(state) < n {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the batch did not finish %d files in time; stderr:\n%s", n, errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(150 * time.Millisecond)
	return cmd, &errOut
}

func countLines(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	s := bufio.NewScanner(f)
	for s.Scan() {
		if strings.HasSuffix(strings.TrimSpace(s.Text()), "}") {
			n++
		}
	}
	return n
}

// TestBatchShards runs three shards into one output folder, one of them
// configured the Kubernetes way, and merges their reports.
func TestBatchShards(t *testing.T) {
	detector, pose, _, _ := e2eFixtures(t)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	files := map[string]string{}
	for _, name := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		files["x/"+name+".mp4"] = "<clip>"
	}
	writeTree(t, in, files)
	base := append([]string{"batch", "-q", "--device", "cpu"}, modelFlags(detector, pose)...)
	seen := map[string]int{}
	for i := 0; i < 3; i++ {
		args := append([]string{}, base...)
		var env []string
		if i == 1 {
			env = []string{"JOB_COMPLETION_INDEX=1", "ANONYMIZE_SHARD_COUNT=3"}
		} else {
			args = append(args, "--shard-index", string(rune('0'+i)), "--shard-count", "3")
		}
		r := run(t, env, append(args, in, out)...)
		if r.code != 0 {
			t.Fatalf("shard %d: exit %d\n%s", i, r.code, r.stderr)
		}
		rep := readReport(t, filepath.Join(out, "anonymize-report.shard-"+string(rune('0'+i))+"-of-3.json"))
		for _, f := range rep.Files {
			if f.Status == batch.StatusDone {
				seen[f.Input]++
			}
		}
	}
	for rel := range files {
		if seen[rel] != 1 {
			t.Errorf("%s processed %d times over the shards, want exactly 1", rel, seen[rel])
		}
	}

	merged := filepath.Join(out, "anonymize-report.json")
	reports, _ := filepath.Glob(filepath.Join(out, "anonymize-report.shard-*-of-3.json"))
	r := run(t, nil, append([]string{"report", "merge", "-o", merged}, reports...)...)
	if r.code != 0 {
		t.Fatalf("report merge: exit %d\n%s", r.code, r.stderr)
	}
	rep := readReport(t, merged)
	if rep.Totals.Files.Total != len(files) || rep.Totals.Files.Done != len(files) {
		t.Errorf("merged totals %+v, want %d files all done", rep.Totals.Files, len(files))
	}
	var raw map[string]any
	data, _ := os.ReadFile(merged)
	json.Unmarshal(data, &raw)
	if raw["merged_from"] == nil {
		t.Error("the merged report does not say which reports it combines")
	}
}

// TestBatchDryRun lists the plan and writes nothing.
func TestBatchDryRun(t *testing.T) {
	detector, pose, _, _ := e2eFixtures(t)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	writeTree(t, in, map[string]string{"a.mp4": "<clip>", "sub/b.mov": "<clip>", "skip/c.mp4": "<clip>", "notes.txt": "x"})
	r := run(t, nil, append(append([]string{"batch", "--dry-run", "--exclude", "skip/**", "--device", "cpu"},
		modelFlags(detector, pose)...), in, out)...)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"a.mp4 -> a.mp4", "sub/b.mov -> sub/b.mov", "2 to process, 0 already done"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("plan lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "skip/c.mp4") || strings.Contains(r.stdout, "notes.txt") {
		t.Errorf("plan lists excluded files:\n%s", r.stdout)
	}
	if got := outputTree(t, out); len(got) != 0 {
		t.Errorf("dry run wrote %v", got)
	}
}

// TestBatchTerminated sends SIGTERM to a batch, as Kubernetes does to a pod
// it evicts: the batch stops with 143, says how to resume, and leaves only
// complete videos.
func TestBatchTerminated(t *testing.T) {
	detector, pose, _, _ := e2eFixtures(t)
	_, frames := shortClip(t)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	files := map[string]string{}
	for _, name := range []string{"a", "b", "c", "d", "e", "f"} {
		files[name+".mp4"] = "<clip>"
	}
	writeTree(t, in, files)
	args := append(append([]string{"batch", "-q", "--device", "cpu", "--jobs", "1"}, modelFlags(detector, pose)...), in, out)
	cmd, errOut := startBatchUntil(t, args, out, 1)
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	if got := exitStatus(err); got != 143 {
		t.Errorf("exit %v, want 143", err)
	}
	want := "anonymize: interrupted by SIGTERM; unfinished output was removed; finished files are kept: run the same command again to resume"
	if got := lastLine(errOut.String()); got != want {
		t.Errorf("last line %q, want %q", got, want)
	}
	done := outputTree(t, out)
	if len(done) == 0 || len(done) == len(files) {
		t.Fatalf("output tree %v: want some files, not all", done)
	}
	for _, rel := range done {
		if n := countFrames(t, filepath.Join(out, rel)); n != frames {
			t.Errorf("%s has %d frames, want %d", rel, n, frames)
		}
	}
	rep := readReport(t, filepath.Join(out, "anonymize-report.json"))
	if rep.RunStatus != batch.RunInterrupted {
		t.Errorf("report run_status %q", rep.RunStatus)
	}
}

// TestBatchReportsTiming: the audit report says which inputs have a
// variable frame rate and which are stored turned, and a partial file
// that a killed `anonymize video` left in the input tree is no input.
func TestBatchReportsTiming(t *testing.T) {
	detector, pose, _, _ := e2eFixtures(t)
	clip, frames := shortClip(t)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	if err := os.MkdirAll(in, 0o755); err != nil {
		t.Fatal(err)
	}
	ffmpeg := testutil.Tool(t, "ffmpeg")
	mustRun(t, ffmpeg, "-v", "error", "-i", clip, "-vf", "setpts='(N+if(gte(N,8),20,0))/30/TB'", "-fps_mode", "passthrough",
		"-c:v", "libx264", "-c:a", "copy", filepath.Join(in, "phone.mkv"))
	mustRun(t, ffmpeg, "-v", "error", "-i", clip, "-c", "copy", "-metadata:s:v:0", "rotate=90", filepath.Join(in, "portrait.mp4"))
	copyFile(t, clip, filepath.Join(in, ".portrait.mp4.anonymize-00112233445566ff.mp4"))
	r := run(t, nil, append(append([]string{"batch", "-q", "--device", "cpu"}, modelFlags(detector, pose)...), in, out)...)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	rep := readReport(t, filepath.Join(out, "anonymize-report.json"))
	if len(rep.Files) != 2 {
		t.Fatalf("report lists %d files, want the two videos", len(rep.Files))
	}
	for _, f := range rep.Files {
		if f.Frames != frames || f.Video == nil {
			t.Fatalf("%s: %d frames, video %+v", f.Input, f.Frames, f.Video)
		}
		switch f.Input {
		case "phone.mkv":
			if f.Video.FPS != "variable" || f.Video.Orientation != "" {
				t.Errorf("phone.mkv reported at %s fps, orientation %q; want variable, none", f.Video.FPS, f.Video.Orientation)
			}
		case "portrait.mp4":
			if f.Video.FPS == "variable" || f.Video.Orientation == "" || f.Video.Width != 360 || f.Video.Height != 480 {
				t.Errorf("portrait.mp4 reported as %+v; want a constant rate, an orientation and 360x480", *f.Video)
			}
		}
	}
}
