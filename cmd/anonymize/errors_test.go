package main

// One test per kind of bad input: each must end with exit status 1, one
// "anonymize: error:" line saying what is wrong and what to do, no stack
// trace or stray tool output, and nothing left in the output folder.

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anonymize-dev/anonymize/internal/testutil"
)

type badInput struct {
	name string
	// setup prepares the case in dir and returns the command's arguments
	// and extra environment.
	setup   func(t *testing.T, dir string) (args []string, env []string)
	wantMsg []string // every string must be in the error line
}

func TestBadInputs(t *testing.T) {
	detector, pose, clip, _ := e2eFixtures(t)
	models := modelFlags(detector, pose)
	video := func(in, out string, extra ...string) []string {
		return append(append(append([]string{"video", "-q", "--device", "cpu"}, extra...), models...), in, out)
	}
	ffmpeg := testutil.Tool(t, "ffmpeg")

	tests := []badInput{
		{
			name: "missing input",
			setup: func(t *testing.T, dir string) ([]string, []string) {
				return video(filepath.Join(dir, "nope.mp4"), filepath.Join(dir, "out.mp4")), nil
			},
			wantMsg: []string{"nope.mp4 does not exist"},
		},
		{
			name: "not a video",
			setup: func(t *testing.T, dir string) ([]string, []string) {
				in := filepath.Join(dir, "notes.mp4")
				writeFile(t, in, "these are meeting notes, not a video\n")
				return video(in, filepath.Join(dir, "out.mp4")), nil
			},
			wantMsg: []string{"notes.mp4 is not a video file"},
		},
		{
			name: "zero frames",
			setup: func(t *testing.T, dir string) ([]string, []string) {
				in := filepath.Join(dir, "empty.avi")
				mustRun(t, ffmpeg, "-v", "error", "-f", "lavfi", "-i", "testsrc2", "-frames:v", "0", "-c:v", "mpeg4", in)
				return video(in, filepath.Join(dir, "out.mp4")), nil
			},
			wantMsg: []string{"empty.avi has no video frames"},
		},
		{
			name: "stream cut midway",
			setup: func(t *testing.T, dir string) ([]string, []string) {
				// The clip is written with its index first (faststart), so a
				// cut file still opens and promises every frame: it is
				// refused before any work.
				data, err := os.ReadFile(clip)
				if err != nil {
					t.Fatal(err)
				}
				in := filepath.Join(dir, "cut.mp4")
				writeFile(t, in, string(data[:len(data)*6/10]))
				return video(in, filepath.Join(dir, "out.mp4")), nil
			},
			wantMsg: []string{"cut.mp4: stream is corrupt or truncated: the file ends at frame ", " of 45"},
		},
		{
			name: "output folder missing",
			setup: func(t *testing.T, dir string) ([]string, []string) {
				return video(clip, filepath.Join(dir, "no", "such", "out.mp4")), nil
			},
			wantMsg: []string{"output folder", "does not exist; create it first"},
		},
		{
			name: "output exists",
			setup: func(t *testing.T, dir string) ([]string, []string) {
				out := filepath.Join(dir, "out.mp4")
				writeFile(t, out, "precious")
				return video(clip, out), nil
			},
			wantMsg: []string{"exists; pass --overwrite to replace it"},
		},
		{
			name: "output is the input",
			setup: func(t *testing.T, dir string) ([]string, []string) {
				in := filepath.Join(dir, "in.mp4")
				copyFile(t, clip, in)
				return video(in, in, "--overwrite"), nil
			},
			wantMsg: []string{"is the input file; never write to the input"},
		},
		{
			name: "missing model file",
			setup: func(t *testing.T, dir string) ([]string, []string) {
				return []string{"video", "-q", "--device", "cpu", "--detector-model", filepath.Join(dir, "detr.onnx"),
					"--pose-model", pose, clip, filepath.Join(dir, "out.mp4")}, nil
			},
			wantMsg: []string{"--detector-model", "detr.onnx"},
		},
		{
			name: "no models installed",
			setup: func(t *testing.T, dir string) ([]string, []string) {
				empty := filepath.Join(dir, "models")
				os.Mkdir(empty, 0o755)
				return []string{"video", "-q", "--device", "cpu", clip, filepath.Join(dir, "out.mp4")},
					[]string{"ANONYMIZE_MODELS=" + empty}
			},
			wantMsg: []string{"detr-resnet-50 not found", "anonymize models pull detr-resnet-50", "--detector-model PATH"},
		},
		{
			name: "corrupt model",
			setup: func(t *testing.T, dir string) ([]string, []string) {
				bad := filepath.Join(dir, "broken.onnx")
				data, _ := os.ReadFile(detector)
				writeFile(t, bad, string(data[:len(data)/3]))
				return []string{"video", "-q", "--device", "cpu", "--detector-model", bad, "--pose-model", pose,
					clip, filepath.Join(dir, "out.mp4")}, nil
			},
			wantMsg: []string{"broken.onnx is not a valid ONNX file", "re-export or re-download it"},
		},
		{
			name: "model with the wrong inputs and outputs",
			setup: func(t *testing.T, dir string) ([]string, []string) {
				return []string{"video", "-q", "--device", "cpu", "--detector-model", pose, "--pose-model", pose,
					clip, filepath.Join(dir, "out.mp4")}, nil
			},
			wantMsg: []string{"does not fit", "expected pixel_values float32[?,3,?,?]", "found input float32[?,3,256,192]"},
		},
		{
			name: "ONNX Runtime library missing",
			setup: func(t *testing.T, dir string) ([]string, []string) {
				return video(clip, filepath.Join(dir, "out.mp4"), "--ort-lib", filepath.Join(dir, "libonnxruntime.so")), nil
			},
			wantMsg: []string{"--ort-lib", "no such file", "make setup"},
		},
		{
			name: "ffmpeg failing",
			setup: func(t *testing.T, dir string) ([]string, []string) {
				// An ffmpeg that dies as a real one does on a bad encoder
				// setting; ffprobe stays the real one.
				bin := filepath.Join(dir, "bin")
				os.Mkdir(bin, 0o755)
				writeFile(t, filepath.Join(bin, "ffmpeg"), "#!/bin/sh\necho 'first complaint' >&2\necho '[libx264 @ 0x1] broken encoder: out of licences' >&2\nexit 1\n")
				os.Chmod(filepath.Join(bin, "ffmpeg"), 0o755)
				os.Symlink(testutil.Tool(t, "ffprobe"), filepath.Join(bin, "ffprobe"))
				out := filepath.Join(dir, "out")
				os.Mkdir(out, 0o755)
				return video(clip, filepath.Join(out, "out.mp4")), []string{"PATH=" + bin}
			},
			wantMsg: []string{"ffmpeg", "broken encoder: out of licences"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			args, env := tt.setup(t, dir)
			before := listTree(t, dir)
			r := run(t, env, args...)
			assertOneLineError(t, r, exitError, tt.wantMsg...)
			if after := listTree(t, dir); after != before {
				t.Errorf("files changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// unprivileged is a world-readable copy of the binary, ONNX Runtime and the
// models, to run as an unprivileged user when the tests run as root, for
// whom no file is unreadable and no folder unwritable.
type unprivileged struct {
	dir, bin, lib, det, pose, audit string
}

func newUnprivileged(t *testing.T) *unprivileged {
	t.Helper()
	detector, pose, _, _ := e2eFixtures(t)
	u := &unprivileged{dir: t.TempDir()}
	u.bin = filepath.Join(u.dir, "anonymize")
	copyFile(t, anonymizeBin(t), u.bin)
	os.Chmod(u.bin, 0o755)
	u.lib = filepath.Join(u.dir, "libonnxruntime.so.1")
	copyFile(t, testutil.ORTLib(t), u.lib)
	u.det, u.pose = filepath.Join(u.dir, "d.onnx"), filepath.Join(u.dir, "p.onnx")
	copyFile(t, detector, u.det)
	copyFile(t, pose, u.pose)
	u.audit = filepath.Join(u.dir, "blazeface.onnx")
	copyFile(t, testutil.AuditModel(t), u.audit)
	for p := u.dir; p != "/" && p != "."; p = filepath.Dir(p) {
		if st, err := os.Stat(p); err == nil && st.Mode().Perm()&0o005 != 0o005 {
			os.Chmod(p, st.Mode().Perm()|0o005)
		}
	}
	return u
}

// flags are the runtime and model flags pointing at the copies.
func (u *unprivileged) flags() []string {
	return []string{"--device", "cpu", "--ort-lib", u.lib, "--detector-model", u.det, "--pose-model", u.pose, "--audit-model", u.audit}
}

// run runs the binary as nobody when the tests run as root.
func (u *unprivileged) run(t *testing.T, args ...string) result {
	t.Helper()
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			testutil.Missing(t, "setpriv", "apt-get install util-linux")
		}
		cmd = exec.Command(setpriv, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", u.bin}, args...)...)
	} else {
		cmd = exec.Command(u.bin, args...)
	}
	cmd.Env = append(os.Environ(), "HOME="+u.dir)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errOut.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestUnwritableOutputFolder runs as an unprivileged user when the tests
// run as root, for whom no folder is unwritable.
func TestUnwritableOutputFolder(t *testing.T) {
	_, _, clip, _ := e2eFixtures(t)
	u := newUnprivileged(t)
	outDir := filepath.Join(u.dir, "readonly")
	os.Mkdir(outDir, 0o555)
	in := filepath.Join(u.dir, "in.mp4")
	copyFile(t, clip, in)
	r := u.run(t, append(append([]string{"video", "-q"}, u.flags()...), in, filepath.Join(outDir, "out.mp4"))...)
	assertOneLineError(t, r, exitError, "cannot write to", "permission denied")
	if entries, _ := os.ReadDir(outDir); len(entries) != 0 {
		t.Errorf("%d files left in the read-only folder", len(entries))
	}
}

// TestNoONNXRuntimeAnywhere runs a binary that has no library beside it and
// no variable pointing at one.
func TestNoONNXRuntimeAnywhere(t *testing.T) {
	detector, pose, clip, _ := e2eFixtures(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "anonymize")
	copyFile(t, anonymizeBin(t), bin)
	os.Chmod(bin, 0o755)
	cmd := exec.Command(bin, append(append([]string{"video", "-q", "--device", "cpu"}, modelFlags(detector, pose)...),
		clip, filepath.Join(dir, "out.mp4"))...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ANONYMIZE_ORT_LIB=") && !strings.HasPrefix(kv, "LD_LIBRARY_PATH=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.CombinedOutput()
	r := result{stderr: string(out)}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	}
	assertOneLineError(t, r, exitError, "ONNX Runtime library not found", "make setup", "ANONYMIZE_ORT_LIB")
}

func assertOneLineError(t *testing.T, r result, code int, want ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit status %d, want %d", r.code, code)
	}
	var errLines []string
	for _, l := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		switch {
		case strings.HasPrefix(l, "anonymize: error: "):
			errLines = append(errLines, l)
		case strings.HasPrefix(l, "anonymize: warning: "):
		default:
			t.Errorf("stray output on stderr: %q", l)
		}
	}
	if len(errLines) != 1 {
		t.Fatalf("%d error lines, want 1; stderr:\n%s", len(errLines), r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(errLines[0], w) {
			t.Errorf("error %q does not mention %q", errLines[0], w)
		}
	}
}

func listTree(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil {
			rel, _ := filepath.Rel(dir, p)
			b.WriteString(rel + "\n")
		}
		return nil
	})
	return b.String()
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}
