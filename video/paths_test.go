package video

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anonymize-dev/anonymize/internal/testutil"
)

func TestCheckPaths(t *testing.T) {
	dir := t.TempDir()
	touch := func(name string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	input := touch("in.mp4")
	existing := touch("existing.mp4")
	symlink := filepath.Join(dir, "link.mp4")
	if err := os.Symlink(input, symlink); err != nil {
		t.Fatal(err)
	}
	hardlink := filepath.Join(dir, "hard.mp4")
	if err := os.Link(input, hardlink); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	// The same file reached through another spelling of its folder.
	roundabout := filepath.Join(sub, "..", "in.mp4")

	tests := []struct {
		name      string
		input     string
		output    string
		overwrite bool
		want      string // error prefix; "" means success
		wantIs    error
	}{
		{name: "fresh output", input: input, output: filepath.Join(dir, "out.mp4")},
		{name: "fresh output in subfolder", input: input, output: filepath.Join(sub, "out.mkv")},
		{name: "overwrite existing", input: input, output: existing, overwrite: true},
		{name: "missing input", input: filepath.Join(dir, "nope.mp4"), output: filepath.Join(dir, "out.mp4"),
			want: "input " + filepath.Join(dir, "nope.mp4") + " does not exist", wantIs: fs.ErrNotExist},
		{name: "input is a folder", input: sub, output: filepath.Join(dir, "out.mp4"), want: "input " + sub + " is a directory"},
		{name: "output is input", input: input, output: input, overwrite: true, want: "output " + input + " is the input file; never write to the input"},
		{name: "output is input by another path", input: input, output: roundabout, overwrite: true, want: "output " + roundabout + " is the input file"},
		{name: "output is a symlink to input", input: input, output: symlink, overwrite: true, want: "output " + symlink + " is the input file"},
		{name: "output is a hard link to input", input: input, output: hardlink, overwrite: true, want: "output " + hardlink + " is the input file"},
		{name: "input is a symlink to output", input: symlink, output: input, overwrite: true, want: "output " + input + " is the input file"},
		{name: "existing output", input: input, output: existing, want: "output " + existing + " exists; pass --overwrite to replace it", wantIs: fs.ErrExist},
		{name: "output is a folder", input: input, output: sub, overwrite: true, want: "output " + sub},
		{name: "output folder missing", input: input, output: filepath.Join(dir, "none", "out.mp4"),
			want: "output folder " + filepath.Join(dir, "none") + " does not exist", wantIs: fs.ErrNotExist},
		{name: "unsupported extension", input: input, output: filepath.Join(dir, "out.gif"), want: "output " + filepath.Join(dir, "out.gif") + " has unsupported extension .gif"},
		{name: "no extension", input: input, output: filepath.Join(dir, "out"), want: "output " + filepath.Join(dir, "out") + " has no file extension"},
		{name: "empty output", input: input, output: "", want: "no output path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckPaths(tt.input, tt.output, tt.overwrite)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckPaths() = %v, want nil", err)
				}
			} else if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("CheckPaths() = %v, want error starting %q", err, tt.want)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.wantIs)
			}
		})
	}
	// The write check must clean up after itself.
	for _, name := range testutil.DirNames(t, dir) {
		if strings.HasPrefix(name, ".") {
			t.Errorf("CheckPaths left %s behind", name)
		}
	}
}

func TestCheckPathsUnwritableFolder(t *testing.T) {
	dir := t.TempDir()
	input := filepath.Join(dir, "in.mp4")
	if err := os.WriteFile(input, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	skipIfWritable(t, ro)
	err := CheckPaths(input, filepath.Join(ro, "out.mp4"), false)
	if want := "cannot write to " + ro + ": permission denied"; err == nil || err.Error() != want {
		t.Errorf("CheckPaths() = %v, want %q", err, want)
	}
	if !errors.Is(err, fs.ErrPermission) {
		t.Errorf("errors.Is(%v, fs.ErrPermission) = false", err)
	}
}

func TestCreateTempAndCommit(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "clip.final.mp4")
	tmp, err := createTemp(out, "")
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(tmp) != dir || !strings.HasPrefix(filepath.Base(tmp), ".clip.final.mp4.anonymize-") || filepath.Ext(tmp) != ".mp4" {
		t.Errorf("temporary name %s: want a hidden file beside %s with the same extension", tmp, out)
	}
	if matched, _ := filepath.Match(tempGlob(out), tmp); !matched {
		t.Errorf("tempGlob(%s) does not match %s", out, tmp)
	}
	tmp2, err := createTemp(out, "")
	if err != nil || tmp2 == tmp {
		t.Fatalf("second temporary file %s, %v: want a distinct name", tmp2, err)
	}
	os.Remove(tmp2)
	if err := os.WriteFile(tmp, []byte("video"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := commit(tmp, out); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(out); err != nil || string(data) != "video" {
		t.Errorf("output holds %q, %v", data, err)
	}
	if names := testutil.DirNames(t, dir); len(names) != 1 {
		t.Errorf("folder holds %v, want only the output", names)
	}
}

func TestTailBuffer(t *testing.T) {
	b := newTailBuffer(64)
	for i := range 100 {
		b.Write([]byte("line " + strings.Repeat("x", i%7) + "\n"))
	}
	b.Write([]byte("\r\n  \nlast one"))
	got := b.lastLines(3)
	want := []string{"line", "line x", "last one"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("lastLines(3) = %q, want %q", got, want)
	}
	if len(b.buf) > 2*64 {
		t.Errorf("buffer grew to %d bytes", len(b.buf))
	}
	big := newTailBuffer(8)
	big.Write([]byte("0123456789abcdef"))
	if got := big.lastLines(5); len(got) != 1 || got[0] != "89abcdef" {
		t.Errorf("oversized write kept %q", got)
	}
}

func TestCreateTempInTempDir(t *testing.T) {
	dir, staging := t.TempDir(), t.TempDir()
	out := filepath.Join(dir, "clip.mkv")
	tmp, err := createTemp(out, staging)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(tmp) != staging || filepath.Ext(tmp) != ".mkv" {
		t.Errorf("temporary file %s: want it in %s with the output's extension", tmp, staging)
	}
	if err := commit(tmp, out); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(staging); len(entries) != 0 {
		t.Errorf("staging folder not empty after commit: %v", entries)
	}
	if _, err := os.Stat(out); err != nil {
		t.Errorf("output not in place: %v", err)
	}
}
