package batch

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestDiscover(t *testing.T) {
	files := map[string]string{
		"a.mp4":                 "",
		"B.MOV":                 "",
		"clip.webm":             "",
		"notes.txt":             "",
		"nested/deep/c.mkv":     "",
		"nested/deep/d.avi":     "",
		"nested/e.mts":          "",
		"nested/f.3gp":          "",
		"raw/g.mp4":             "",
		"raw/sub/h.mp4":         "",
		"weird/no-extension":    "",
		"weird/upper.MPEG":      "",
		"cam1/day1/i.m2ts":      "",
		"cam1/day1/thumbs.jpeg": "",
		// The partial file of an `anonymize video` run that was killed.
		"raw/.g.mp4.anonymize-0123456789abcdef.mp4": "",
	}
	tests := []struct {
		name             string
		include, exclude []string
		want             []string // input -> output, "in=>out"
	}{
		{
			name: "default extensions, case-insensitive, nested",
			want: []string{
				"B.MOV=>B.MOV", "a.mp4=>a.mp4", "cam1/day1/i.m2ts=>cam1/day1/i.mp4", "clip.webm=>clip.mp4",
				"nested/deep/c.mkv=>nested/deep/c.mkv", "nested/deep/d.avi=>nested/deep/d.avi",
				"nested/e.mts=>nested/e.mp4", "nested/f.3gp=>nested/f.mp4",
				"raw/g.mp4=>raw/g.mp4", "raw/sub/h.mp4=>raw/sub/h.mp4", "weird/upper.MPEG=>weird/upper.mp4",
			},
		},
		{
			name:    "include by base name",
			include: []string{"*.mp4"},
			want:    []string{"a.mp4=>a.mp4", "raw/g.mp4=>raw/g.mp4", "raw/sub/h.mp4=>raw/sub/h.mp4"},
		},
		{
			name:    "include by relative path",
			include: []string{"nested/*/*"},
			want:    []string{"nested/deep/c.mkv=>nested/deep/c.mkv", "nested/deep/d.avi=>nested/deep/d.avi"},
		},
		{
			name:    "include with double star",
			include: []string{"nested/**/*.mkv", "cam1/**"},
			want: []string{"cam1/day1/i.m2ts=>cam1/day1/i.mp4", "cam1/day1/thumbs.jpeg=>cam1/day1/thumbs.mp4",
				"nested/deep/c.mkv=>nested/deep/c.mkv"},
		},
		{
			name:    "include a file without extension",
			include: []string{"no-extension"},
			want:    []string{"weird/no-extension=>weird/no-extension.mp4"},
		},
		{
			name:    "exclude a folder by name skips everything below it",
			exclude: []string{"raw", "nested/deep"},
			want: []string{
				"B.MOV=>B.MOV", "a.mp4=>a.mp4", "cam1/day1/i.m2ts=>cam1/day1/i.mp4", "clip.webm=>clip.mp4",
				"nested/e.mts=>nested/e.mp4", "nested/f.3gp=>nested/f.mp4", "weird/upper.MPEG=>weird/upper.mp4",
			},
		},
		{
			name:    "exclude by pattern, case-insensitive",
			include: []string{"*.mp4", "*.mov"},
			exclude: []string{"raw/**/h.*", "b.mov"},
			want:    []string{"a.mp4=>a.mp4", "raw/g.mp4=>raw/g.mp4"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, out := testDirs(t, files)
			items, err := Discover(DiscoverOptions{InDir: in, OutDir: out, Include: tt.include, Exclude: tt.exclude})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, it := range items {
				got = append(got, it.Rel+"=>"+it.OutRel)
				if want := filepath.Join(in, filepath.FromSlash(it.Rel)); it.Input != want {
					t.Errorf("%s: Input %s, want %s", it.Rel, it.Input, want)
				}
				if want := filepath.Join(out, filepath.FromSlash(it.OutRel)); it.Output != want {
					t.Errorf("%s: Output %s, want %s", it.Rel, it.Output, want)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

func TestDiscoverSkipsOutDirInsideInDirAndSymlinkedFolders(t *testing.T) {
	in, _ := testDirs(t, map[string]string{
		"a.mp4":           "",
		"out/done.mp4":    "", // an earlier run's output, inside IN_DIR
		"elsewhere/b.mp4": "",
	})
	outside := t.TempDir()
	writeTree(t, outside, map[string]string{"linked.mp4": ""})
	if err := os.Symlink(outside, filepath.Join(in, "linkdir")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "linked.mp4"), filepath.Join(in, "linkfile.mp4")); err != nil {
		t.Fatal(err)
	}
	items, err := Discover(DiscoverOptions{InDir: in, OutDir: filepath.Join(in, "out")})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range items {
		got = append(got, it.Rel)
	}
	want := []string{"a.mp4", "elsewhere/b.mp4", "linkfile.mp4"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v (OUT_DIR and symlinked folders skipped, symlinked files kept)", got, want)
	}
	// Reached through a symlink, IN_DIR is the same folder.
	link := filepath.Join(t.TempDir(), "in-link")
	if err := os.Symlink(in, link); err != nil {
		t.Fatal(err)
	}
	items, err = Discover(DiscoverOptions{InDir: link, OutDir: filepath.Join(in, "out")})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != len(want) {
		t.Errorf("through a symlinked IN_DIR: %d files, want %d", len(items), len(want))
	}
}

func TestDiscoverErrors(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		in, out func(in, out string) string
		include []string
		exclude []string
		usage   bool
		want    []string
	}{
		{
			name:  "output equals input",
			out:   func(in, _ string) string { return in + string(filepath.Separator) + "." },
			usage: true, want: []string{"is IN_DIR"},
		},
		{
			name:  "input inside output",
			out:   func(in, _ string) string { return filepath.Dir(in) },
			usage: true, want: []string{"lies inside OUT_DIR"},
		},
		{
			name:  "input missing",
			in:    func(in, _ string) string { return filepath.Join(in, "nope") },
			usage: true, want: []string{"does not exist"},
		},
		{
			name:  "input is a file",
			files: map[string]string{"a.mp4": ""},
			in:    func(in, _ string) string { return filepath.Join(in, "a.mp4") },
			usage: true, want: []string{"not a folder"},
		},
		{
			name:  "two inputs map to one output",
			files: map[string]string{"x/a.webm": "", "x/a.mp4": "", "b.flv": "", "b.mp4": "", "c.mov": ""},
			usage: true,
			want:  []string{"x/a.mp4 and x/a.webm would all be written to x/a.mp4", "b.flv and b.mp4 would all be written to b.mp4"},
		},
		{
			name:  "input that maps into the state folder",
			files: map[string]string{".anonymize/a.mp4": ""},
			usage: true, want: []string{".anonymize/a.mp4", "holds the batch's state"},
		},
		{
			name:    "malformed include",
			include: []string{"[a-"},
			usage:   true, want: []string{`--include "[a-"`},
		},
		{
			name:    "empty exclude",
			exclude: []string{""},
			usage:   true, want: []string{"--exclude", "empty pattern"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, out := testDirs(t, tt.files)
			if tt.in != nil {
				in = tt.in(in, out)
			}
			if tt.out != nil {
				out = tt.out(in, out)
			}
			_, err := Discover(DiscoverOptions{InDir: in, OutDir: out, Include: tt.include, Exclude: tt.exclude})
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, ErrUsage) != tt.usage {
				t.Errorf("errors.Is(err, ErrUsage) = %v, want %v", !tt.usage, tt.usage)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestDiscoverUnreadableFolder(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads every folder")
	}
	in, out := testDirs(t, map[string]string{"a.mp4": "", "locked/b.mp4": ""})
	locked := filepath.Join(in, "locked")
	if err := os.Chmod(locked, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(locked, 0o755) })
	_, err := Discover(DiscoverOptions{InDir: in, OutDir: out})
	if err == nil || !strings.Contains(err.Error(), "--exclude") {
		t.Errorf("error %v: want one that says how to leave the folder out", err)
	}
	items, err := Discover(DiscoverOptions{InDir: in, OutDir: out, Exclude: []string{"locked"}})
	if err != nil || len(items) != 1 {
		t.Errorf("with the folder excluded: %d items, %v; want 1, nil", len(items), err)
	}
}

func TestMatchSegments(t *testing.T) {
	tests := []struct {
		pattern, path string
		want          bool
	}{
		{"*.mp4", "a.mp4", true},
		{"*.mp4", "d/a.mp4", false},
		{"d/*.mp4", "d/a.mp4", true},
		{"**", "a/b/c", true},
		{"**/c", "c", true},
		{"**/c", "a/b/c", true},
		{"a/**/c", "a/c", true},
		{"a/**/c", "a/x/y/c", true},
		{"a/**/c", "a/x/y/d", false},
		{"a/**", "a", true},
		{"a/**", "b/a", false},
		{"a/*/c", "a/x/y/c", false},
	}
	for _, tt := range tests {
		if got := matchSegments(strings.Split(tt.pattern, "/"), strings.Split(tt.path, "/")); got != tt.want {
			t.Errorf("match(%q, %q) = %v, want %v", tt.pattern, tt.path, got, tt.want)
		}
	}
}
