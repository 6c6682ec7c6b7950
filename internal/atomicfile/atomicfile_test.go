package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anonymize-dev/anonymize/internal/testutil"
)

func TestWriteFile(t *testing.T) {
	tests := []struct {
		name   string
		old    string // content before; "" for no file
		tmpDir bool
		perm   fs.FileMode
	}{
		{name: "new file", perm: 0o644},
		{name: "replaces", old: "old content, longer than the new", perm: 0o644},
		{name: "private", perm: 0o600},
		{name: "temporary file elsewhere", old: "old", tmpDir: true, perm: 0o644},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "report.json")
			if tt.old != "" {
				if err := os.WriteFile(path, []byte(tt.old), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			tmpDir := ""
			if tt.tmpDir {
				tmpDir = t.TempDir()
			}
			if err := WriteFileIn(tmpDir, path, []byte("new"), tt.perm); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != "new" {
				t.Fatalf("content %q, %v; want %q", got, err, "new")
			}
			st, _ := os.Stat(path)
			if st.Mode().Perm() != tt.perm {
				t.Errorf("mode %v, want %v", st.Mode().Perm(), tt.perm)
			}
			if n := testutil.DirNames(t, dir); len(n) != 1 {
				t.Errorf("folder holds %q, want only the file", n)
			}
			if tmpDir != "" {
				if n := testutil.DirNames(t, tmpDir); len(n) != 0 {
					t.Errorf("temporary folder holds %q", n)
				}
			}
		})
	}
}

// TestWriteFileFails: a write that cannot finish leaves the old content
// and no temporary file.
func TestWriteFileFails(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A folder in the way of the rename.
	blocked := filepath.Join(dir, "sub")
	if err := os.MkdirAll(filepath.Join(blocked, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := WriteFile(blocked, []byte("new"), 0o644)
	if err == nil || !strings.Contains(err.Error(), "write "+blocked) {
		t.Fatalf("WriteFile onto a non-empty folder: %v", err)
	}
	if n := testutil.DirNames(t, dir); len(n) != 2 {
		t.Errorf("folder holds %q after a failed write, want state.json and sub", n)
	}
	if err := WriteFile(filepath.Join(dir, "missing", "f"), []byte("x"), 0o644); err == nil {
		t.Error("WriteFile into a missing folder succeeded")
	}
}

func TestPublish(t *testing.T) {
	dir := t.TempDir()
	tmp, path := filepath.Join(dir, ".out.mp4.part"), filepath.Join(dir, "out.mp4")
	if err := os.WriteFile(tmp, []byte("video"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Publish(tmp, path); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "video" {
		t.Errorf("published %q", got)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("temporary file still there: %v", err)
	}
	if err := Publish(tmp, path); err == nil || !strings.Contains(err.Error(), "publish "+path) {
		t.Errorf("Publish of a missing file: %v", err)
	}
}
