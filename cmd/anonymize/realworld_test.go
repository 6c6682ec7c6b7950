package main

// End-to-end tests of footage as phones, screen recorders and editors make
// it (portrait rotation, variable frame rates, edit lists, odd sizes,
// subtitles) and of how a run ends when it is told to stop (signals, a
// kill, a hung telemetry collector): the real binary on generated clips.

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/anonymize-dev/anonymize/internal/testutil"
	"github.com/anonymize-dev/anonymize/video"
)

// videoArgs is `anonymize video` on the CPU with the synthetic models.
func videoArgs(t *testing.T, extra ...string) []string {
	detector, pose, _, _ := e2eFixtures(t)
	args := append([]string{"video", "--device", "cpu"}, modelFlags(detector, pose)...)
	return append(args, extra...)
}

// peopleMasked reads "N people masked" off the summary line.
func peopleMasked(t *testing.T, stderr string) int {
	t.Helper()
	m := regexp.MustCompile(`(\d+) people masked`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no summary line in:\n%s", stderr)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestPhoneOrientation anonymizes the scene stored the way a phone stores
// portrait video (the picture turned, a display matrix saying how to turn
// it back) and checks that the output is the upright scene, masked exactly
// as when it is stored upright: the models saw people standing, not lying.
// Tracking is off (--hold 0) so that the masks are the detections' alone
// and the output can be compared with ffmpeg's view of the input.
func TestPhoneOrientation(t *testing.T) {
	_, _, clip, scene := e2eFixtures(t)
	dir := t.TempDir()
	upright := filepath.Join(dir, "upright.mp4")
	r := run(t, nil, append(videoArgs(t, "--hold", "0"), clip, upright)...)
	if r.code != 0 {
		t.Fatalf("upright clip: exit %d\n%s", r.code, r.stderr)
	}
	wantPeople := peopleMasked(t, r.stderr)
	_, _, want := testutil.DecodeBGR(t, upright)
	_, _, original := testutil.DecodeBGR(t, clip)

	// stored returns the clip with its pixels turned by filter and the
	// display matrix set by tag, if ffmpeg then shows it upright.
	stored := func(name, filter string, tag func(path string)) (string, bool) {
		turned := filepath.Join(dir, "turned-"+name)
		mustRun(t, testutil.Tool(t, "ffmpeg"), "-v", "error", "-y", "-i", clip, "-vf", filter,
			"-c:v", "libx264", "-crf", "8", "-preset", "veryfast", "-c:a", "copy", turned)
		tag(turned)
		_, _, shown := testutil.DecodeBGR(t, turned)
		return turned, len(shown[0]) == len(original[0]) && testutil.MeanAbsDiff(shown[0], original[0]) < 3
	}
	rotateTag := func(deg string) func(string) {
		return func(path string) {
			tagged := path + ".tagged.mp4"
			mustRun(t, testutil.Tool(t, "ffmpeg"), "-v", "error", "-y", "-i", path, "-c", "copy", "-metadata:s:v:0", "rotate="+deg, tagged)
			if err := os.Rename(tagged, path); err != nil {
				t.Fatal(err)
			}
		}
	}
	const fixed = 1 << 16
	tests := []struct {
		name    string
		filters []string // how the pixels may be turned; the one ffmpeg shows upright is used
		tag     func(path string)
		shown   string // how the summary says players show the input
	}{
		{"rotate=90", []string{"transpose=clock", "transpose=cclock"}, rotateTag("90"), "turned 270° clockwise"},
		{"rotate=180", []string{"hflip,vflip"}, rotateTag("180"), "turned 180° clockwise"},
		{"rotate=270", []string{"transpose=cclock", "transpose=clock"}, rotateTag("270"), "turned 90° clockwise"},
		{"rotate=-90", []string{"transpose=cclock", "transpose=clock"}, rotateTag("-90"), "turned 90° clockwise"},
		{"iPhone portrait matrix", []string{"transpose=cclock", "transpose=clock"}, func(path string) {
			testutil.SetDisplayMatrix(t, path, [9]int32{0, fixed, 0, -fixed, 0, 0, int32(scene.Height) * fixed, 0, 1 << 30})
		}, "turned 90° clockwise"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var in string
			for i, f := range tt.filters {
				p, upright := stored(fmt.Sprintf("%s-%d.mp4", strings.ReplaceAll(tt.name, " ", "-"), i), f, tt.tag)
				if upright {
					in = p
					break
				}
			}
			if in == "" {
				t.Fatalf("test setup: no way of turning the pixels makes ffmpeg show %s upright", tt.name)
			}
			out := filepath.Join(t.TempDir(), "out.mp4")
			r := run(t, nil, append(videoArgs(t, "--hold", "0"), in, out)...)
			if r.code != 0 {
				t.Fatalf("exit %d\n%s", r.code, r.stderr)
			}
			summary := lastLine(r.stderr)
			if !strings.Contains(summary, fmt.Sprintf("%dx%d", scene.Width, scene.Height)) ||
				!strings.Contains(summary, "made upright (players show the input "+tt.shown+")") {
				t.Errorf("summary %q does not say the %dx%d output was made upright from %s", summary, scene.Width, scene.Height, tt.shown)
			}
			if got := peopleMasked(t, r.stderr); got != wantPeople {
				t.Errorf("%d people masked, %d when stored upright", got, wantPeople)
			}
			if rot := ffprobeValue(t, out, "-select_streams", "v:0", "-show_entries", "stream_side_data=rotation"); rot != "" {
				t.Errorf("output carries a rotation (%s): it must be upright as stored", rot)
			}
			w, h, got := testutil.DecodeBGR(t, out)
			if w != scene.Width || h != scene.Height || len(got) != len(want) {
				t.Fatalf("output %dx%d with %d frames, want %dx%d with %d", w, h, len(got), scene.Width, scene.Height, len(want))
			}
			// Frame by frame: the same as ffmpeg's upright view of the
			// input but for the masks (a few percent of the pixels, which
			// the median ignores), and the same as the upright clip's
			// output, masks included.
			_, _, shown := testutil.DecodeBGR(t, in)
			for i := range got {
				if d := medianAbsDiff(got[i], shown[i]); d > 2 {
					t.Errorf("frame %d differs from ffmpeg's upright input by %d (median)", i, d)
				}
				if d := testutil.MeanAbsDiff(got[i], want[i]); d > 3 {
					t.Errorf("frame %d differs from the upright clip's output by %.1f on average", i, d)
				}
			}
		})
	}
}

// medianAbsDiff is the median absolute difference of two equally long
// byte slices.
func medianAbsDiff(a, b []byte) int {
	var hist [256]int
	for i := range a {
		d := int(a[i]) - int(b[i])
		hist[max(d, -d)]++
	}
	n := 0
	for d, c := range hist {
		if n += c; 2*n >= len(a) {
			return d
		}
	}
	return 255
}

// TestVariableFrameRateAndEdits anonymizes clips whose frames are unevenly
// spaced or partly hidden by an edit list: every frame comes out, each
// when the input shows it, with the sound in step.
func TestVariableFrameRateAndEdits(t *testing.T) {
	_, _, clip, _ := e2eFixtures(t)
	dir := t.TempDir()
	ffmpeg := testutil.Tool(t, "ffmpeg")
	noise := "anoisesrc=d=4:c=white:r=48000:a=0.5:seed=11"
	// A phone that slowed down in the dark, then sped up again.
	vfrPTS := "setpts='(N+if(gte(N,10),15,0)+if(gte(N,30),7,0))/30/TB'"
	tests := []struct {
		name     string
		make     []string // ffmpeg arguments before the output
		after    func(path string)
		variable bool
		acodec   string // how ffmpeg's own remux carries the audio; "" without audio
	}{
		{name: "vfr.mkv", variable: true, acodec: "copy",
			make: []string{"-i", clip, "-f", "lavfi", "-i", noise, "-map", "0:v", "-map", "1:a", "-vf", vfrPTS, "-fps_mode", "passthrough",
				"-c:v", "libx264", "-crf", "12", "-c:a", "aac"}},
		{name: "vfr.mp4", variable: true, acodec: "copy",
			make: []string{"-i", clip, "-f", "lavfi", "-i", noise, "-map", "0:v", "-map", "1:a", "-vf", vfrPTS, "-fps_mode", "passthrough",
				"-c:v", "libx264", "-crf", "12", "-c:a", "aac"}},
		{name: "paused-recording.webm", variable: true,
			make: []string{"-i", clip, "-vf", "select='not(between(n,12,30))',setpts=PTS-STARTPTS", "-fps_mode", "passthrough",
				"-c:v", "libvpx-vp9", "-deadline", "realtime", "-b:v", "2M", "-an"}},
		{name: "discarded-last-sample.mp4",
			make: []string{"-i", clip, "-c", "copy"},
			after: func(path string) {
				// The last frame now lies past the edit list's end:
				// players drop it, the sample table still counts it.
				testutil.ShortenEditList(t, path, 34*time.Millisecond)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := filepath.Join(dir, tt.name)
			mustRun(t, ffmpeg, append(append([]string{"-v", "error", "-y"}, tt.make...), in)...)
			if tt.after != nil {
				tt.after(in)
			}
			want := testutil.FrameTimes(t, in)
			out := filepath.Join(t.TempDir(), "out.mp4")
			r := run(t, nil, append(videoArgs(t), in, out)...)
			if r.code != 0 {
				t.Fatalf("exit %d\n%s", r.code, r.stderr)
			}
			if w := unexpectedWarnings(r.stderr); len(w) > 0 {
				t.Errorf("unexpected warnings: %q", w)
			}
			if summary := lastLine(r.stderr); strings.Contains(summary, "variable") != tt.variable ||
				!strings.Contains(summary, fmt.Sprintf("%d frames", len(want))) {
				t.Errorf("summary %q: want %d frames, variable rate %v", summary, len(want), tt.variable)
			}
			got := testutil.FrameTimes(t, out)
			if len(got) != len(want) {
				t.Fatalf("%d frames out, the input shows %d", len(got), len(want))
			}
			tick := oneTick(testutil.StreamTimeBase(t, out, "video"))
			for i := range got {
				if d := (got[i] - got[0]) - (want[i] - want[0]); d > tick || d < -tick {
					t.Errorf("frame %d shown at %v after the first, in the input at %v", i, got[i]-got[0], want[i]-want[0])
				}
			}
			if tt.acodec != "" {
				testutil.CheckInStep(t, in, out, tt.acodec)
			}
		})
	}
}

// unexpectedWarnings returns the lines of stderr that are warnings or
// errors other than the synthetic models' notice, which every run here
// prints.
func unexpectedWarnings(stderr string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if strings.HasPrefix(l, "anonymize: warning: demo model") {
			continue
		}
		if strings.Contains(l, "warning") || strings.Contains(l, "error") {
			out = append(out, l)
		}
	}
	return out
}

// oneTick is one tick of time base tb, rounded up to the nanosecond.
func oneTick(tb *big.Rat) time.Duration {
	f, _ := new(big.Rat).Mul(tb, big.NewRat(int64(time.Second), 1)).Float64()
	return time.Duration(f) + 1
}

// TestOddSizeAndSubtitles anonymizes an odd-sized clip with subtitles: the
// output is padded by one pixel (H.264 4:2:0 needs even sizes) and says
// so, and the subtitles are kept in the output container's format.
func TestOddSizeAndSubtitles(t *testing.T) {
	_, _, clip, scene := e2eFixtures(t)
	dir := t.TempDir()
	srt := filepath.Join(dir, "subs.srt")
	writeFile(t, srt, "1\n00:00:00,000 --> 00:00:00,900\nAlice walks in\n\n2\n00:00:01,000 --> 00:00:01,400\nBob waves\n")
	in := filepath.Join(dir, "odd.mkv")
	w, h := scene.Width+1, scene.Height+1
	mustRun(t, testutil.Tool(t, "ffmpeg"), "-v", "error", "-y", "-i", clip, "-i", srt, "-map", "0", "-map", "1",
		"-vf", fmt.Sprintf("scale=%d:%d", w, h), "-c:v", "ffv1", "-c:a", "copy", "-c:s", "srt", in)
	for _, tt := range []struct{ ext, subtitle string }{{".mkv", "subrip"}, {".mp4", "mov_text"}} {
		t.Run(tt.ext, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out"+tt.ext)
			r := run(t, nil, append(videoArgs(t), in, out)...)
			if r.code != 0 {
				t.Fatalf("exit %d\n%s", r.code, r.stderr)
			}
			if !strings.Contains(r.stderr, fmt.Sprintf("frame size %dx%d is odd; the output is %dx%d, padded with black", w, h, w+1, h+1)) {
				t.Errorf("no warning about the padding:\n%s", r.stderr)
			}
			if s := lastLine(r.stderr); !strings.Contains(s, fmt.Sprintf("%dx%d padded from %dx%d", w+1, h+1, w, h)) {
				t.Errorf("summary %q does not show the padding", s)
			}
			size := ffprobeValue(t, out, "-select_streams", "v:0", "-show_entries", "stream=width") + "x" +
				ffprobeValue(t, out, "-select_streams", "v:0", "-show_entries", "stream=height")
			if size != fmt.Sprintf("%dx%d", w+1, h+1) {
				t.Errorf("output size %s, want %dx%d", size, w+1, h+1)
			}
			if sub := ffprobeValue(t, out, "-select_streams", "s:0", "-show_entries", "stream=codec_name"); sub != tt.subtitle {
				t.Errorf("subtitle stream %q, want %s", sub, tt.subtitle)
			}
			if n := countFrames(t, out); n != scene.Frames {
				t.Errorf("%d frames, want %d", n, scene.Frames)
			}
		})
	}
}

// children returns the pids of the processes whose parent is pid, by name.
func children(pid int) map[string][]int {
	out := map[string][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, ppid, ok := procStat(child)
		if ok && ppid == pid {
			out[comm] = append(out[comm], child)
		}
	}
	return out
}

// procStat reads a process's name and parent; ok is false for a process
// that is gone or a zombie (dead, only waiting to be reaped).
func procStat(pid int) (comm string, ppid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, false
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return "", 0, false
	}
	fields := strings.Fields(s[end+1:])
	if len(fields) < 2 || fields[0] == "Z" || fields[0] == "X" {
		return "", 0, false
	}
	ppid, _ = strconv.Atoi(fields[1])
	return s[open+1 : end], ppid, true
}

// startLongRun starts `anonymize video` on the longest real clip into dir
// and waits until ffmpeg is encoding; it returns the command and ffmpeg's
// pid.
func startLongRun(t *testing.T, dir string, env ...string) (*exec.Cmd, *bytes.Buffer, int) {
	t.Helper()
	in := filepath.Join(testutil.RepoRoot(t), "testdata", "clips", "vtest.avi")
	if _, err := os.Stat(in); err != nil {
		testutil.Missing(t, in, "run `make testdata`")
	}
	cmd := exec.Command(anonymizeBin(t), append(videoArgs(t, "-q"), in, filepath.Join(dir, "out.mp4"))...)
	cmd.Env = append(testEnv(t), env...)
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if ff := children(cmd.Process.Pid)["ffmpeg"]; len(ff) == 1 {
			if entries, _ := os.ReadDir(dir); len(entries) == 1 {
				time.Sleep(200 * time.Millisecond)
				return cmd, &errOut, ff[0]
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	t.Fatalf("ffmpeg never started encoding; stderr:\n%s", errOut.String())
	return nil, nil, 0
}

func exitStatus(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// TestSignalsStopCleanly sends each stopping signal mid-run: the exit
// status is the shell's 128+signal, one line says what happened, nothing
// is left in the output folder, and ffmpeg is gone.
func TestSignalsStopCleanly(t *testing.T) {
	for _, tt := range []struct {
		sig  syscall.Signal
		code int
		name string
	}{
		{syscall.SIGINT, 130, "SIGINT (Ctrl-C)"},
		{syscall.SIGTERM, 143, "SIGTERM"},
		{syscall.SIGHUP, 129, "SIGHUP (terminal closed)"},
	} {
		t.Run(tt.sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			cmd, errOut, ffmpeg := startLongRun(t, dir)
			cmd.Process.Signal(tt.sig)
			err := cmd.Wait()
			if got := exitStatus(err); got != tt.code {
				t.Errorf("exit %v, want %d", err, tt.code)
			}
			want := "anonymize: interrupted by " + tt.name + "; unfinished output was removed"
			if got := lastLine(errOut.String()); got != want {
				t.Errorf("last line %q, want %q", got, want)
			}
			if w := unexpectedWarnings(strings.TrimSuffix(strings.TrimSpace(errOut.String()), want)); len(w) > 0 {
				t.Errorf("more than one line about the interruption: %q", w)
			}
			assertEmptyDir(t, dir)
			if _, _, alive := procStat(ffmpeg); alive {
				t.Errorf("ffmpeg (pid %d) outlived anonymize", ffmpeg)
			}
		})
	}
}

// TestKilledRunLeavesNoOrphan kills anonymize with SIGKILL, which it cannot
// catch: ffmpeg dies with it, and the next run on the same output removes
// the partial file left behind.
func TestKilledRunLeavesNoOrphan(t *testing.T) {
	dir := t.TempDir()
	cmd, _, ffmpeg := startLongRun(t, dir)
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, _, alive := procStat(ffmpeg); !alive {
			break
		}
		if time.Now().After(deadline) {
			syscall.Kill(ffmpeg, syscall.SIGKILL)
			t.Fatalf("ffmpeg (pid %d) still runs 10 s after anonymize was killed", ffmpeg)
		}
		time.Sleep(20 * time.Millisecond)
	}
	left := testutil.DirNames(t, dir)
	if len(left) != 1 || !video.IsTemporary(left[0]) {
		t.Fatalf("after the kill the folder holds %v, want one partial file", left)
	}
	// Killed with anonymize, ffmpeg did not get to finish the partial file
	// into a playable video (which it does when merely left without
	// input).
	probe := exec.Command(testutil.Tool(t, "ffprobe"), "-v", "error", "-count_packets", "-show_entries", "stream=nb_read_packets",
		"file:"+filepath.Join(dir, left[0]))
	if out, err := probe.CombinedOutput(); err == nil {
		t.Errorf("the partial file left by the kill is a playable video: ffmpeg outlived anonymize and finished it (%s)", strings.TrimSpace(string(out)))
	}

	_, _, clip, scene := e2eFixtures(t)
	r := run(t, nil, append(videoArgs(t, "-q"), clip, filepath.Join(dir, "out.mp4"))...)
	if r.code != 0 {
		t.Fatalf("re-run: exit %d\n%s", r.code, r.stderr)
	}
	if names := testutil.DirNames(t, dir); len(names) != 1 || names[0] != "out.mp4" {
		t.Errorf("after the re-run the folder holds %v, want only out.mp4", names)
	}
	if n := countFrames(t, filepath.Join(dir, "out.mp4")); n != scene.Frames {
		t.Errorf("re-run wrote %d frames, want %d", n, scene.Frames)
	}
}

// TestSignalDuringTelemetryFlush stops a run whose video is done while its
// last spans wait on a collector that never answers: the flush ends at
// once instead of after its 10 s bound.
func TestSignalDuringTelemetryFlush(t *testing.T) {
	// A collector that accepts connections and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	_, _, clip, _ := e2eFixtures(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.mp4")
	cmd := exec.Command(anonymizeBin(t), append(videoArgs(t, "-q", "--telemetry", "otlp"), clip, out)...)
	cmd.Env = append(testEnv(t),
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://"+ln.Addr().String(), "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf")
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	// The output is renamed into place before the flush.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(out); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the output never appeared; stderr:\n%s", errOut.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	sent := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	err = cmd.Wait()
	took := time.Since(sent)
	t.Logf("exited %v after SIGTERM", took)
	if got := exitStatus(err); got != 143 {
		t.Errorf("exit %v, want 143", err)
	}
	if took > 3*time.Second {
		t.Errorf("the flush went on for %v after SIGTERM", took)
	}
	if !strings.Contains(errOut.String(), "anonymize: SIGTERM received at the end; the output is complete, telemetry may be incomplete") {
		t.Errorf("stderr does not say the output is complete:\n%s", errOut.String())
	}
	if names := testutil.DirNames(t, dir); len(names) != 1 {
		t.Errorf("folder holds %v, want only the output", names)
	}
}
