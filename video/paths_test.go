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
	name := tmp.name
	if filepath.Dir(name) != dir || !strings.HasPrefix(filepath.Base(name), ".clip.final.mp4.anonymize-") || filepath.Ext(name) != ".mp4" {
		t.Errorf("temporary name %s: want a hidden file beside %s with the same extension", name, out)
	}
	if matched, _ := filepath.Match(tempGlob(out), name); !matched || !IsTemporary(name) {
		t.Errorf("tempGlob(%s) matches %s: %v; IsTemporary: %v", out, name, matched, IsTemporary(name))
	}
	if err := os.WriteFile(name, []byte("video"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := tmp.commit(out); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(out); err != nil || string(data) != "video" {
		t.Errorf("output holds %q, %v", data, err)
	}
	if names := testutil.DirNames(t, dir); len(names) != 1 {
		t.Errorf("folder holds %v, want only the output", names)
	}
}

func TestCreateTempLeftovers(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "clip.mp4")
	other := filepath.Join(dir, "other.mp4")

	// A live run holds its partial file locked: a second run on the same
	// output is refused rather than racing it to the rename.
	live, err := createTemp(out, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := createTemp(out, ""); err == nil || !strings.Contains(err.Error(), "another anonymize run is writing") {
		t.Fatalf("second run on the same output: %v, want 'another anonymize run is writing'", err)
	}
	// Another output in the same folder is not concerned.
	otherTmp, err := createTemp(other, "")
	if err != nil {
		t.Fatalf("run on another output: %v", err)
	}
	defer otherTmp.remove()

	// A killed run leaves its file unlocked: the next run removes it.
	if err := os.WriteFile(live.name, []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	live.release()
	unrelated := filepath.Join(dir, ".clip.mp4.anonymize-notours.mp4")
	if err := os.WriteFile(unrelated, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	next, err := createTemp(out, "")
	if err != nil {
		t.Fatal(err)
	}
	defer next.remove()
	if _, err := os.Stat(live.name); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the killed run's partial file is still there: %v", err)
	}
	if _, err := os.Stat(otherTmp.name); err != nil {
		t.Errorf("another output's live partial file was touched: %v", err)
	}
	if _, err := os.Stat(unrelated); err != nil {
		t.Errorf("a file not named like ours was removed: %v", err)
	}
}

func TestIsTemporary(t *testing.T) {
	for name, want := range map[string]bool{
		".clip.mp4.anonymize-0123456789abcdef.mp4":         true,
		"dir/.a.b.mkv.anonymize-0123456789abcdef.mkv":      true,
		".clip.mp4.anonymize-0123456789abcdef":             true,
		"clip.mp4.anonymize-0123456789abcdef.mp4":          false, // not hidden
		".clip.mp4.anonymize-0123456789abcdeg.mp4":         false,
		".clip.mp4.anonymize-0123.mp4":                     false,
		".anonymize-writecheck-123":                        false,
		"holiday.mp4":                                      false,
		".clip.mp4.anonymize-0123456789abcdef.mp4.txt.mp4": false,
	} {
		if got := IsTemporary(name); got != want {
			t.Errorf("IsTemporary(%q) = %v, want %v", name, got, want)
		}
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
	if filepath.Dir(tmp.name) != staging || filepath.Ext(tmp.name) != ".mkv" {
		t.Errorf("temporary file %s: want it in %s with the output's extension", tmp.name, staging)
	}
	if err := tmp.commit(out); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(staging); len(entries) != 0 {
		t.Errorf("staging folder not empty after commit: %v", entries)
	}
	if _, err := os.Stat(out); err != nil {
		t.Errorf("output not in place: %v", err)
	}
}
