package models

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// withCacheDir makes the user cache folder dir (or fail when err is set)
// for the rest of the test.
func withCacheDir(t *testing.T, dir string, err error) {
	t.Helper()
	old := userCacheDir
	userCacheDir = func() (string, error) { return dir, err }
	t.Cleanup(func() { userCacheDir = old })
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestResolveDir(t *testing.T) {
	tests := []struct {
		name       string
		flag, env  string
		setup      func(t *testing.T, cwd string) // lays out cwd
		cacheErr   error
		wantDir    string // relative to cwd unless absolute; "CACHE" for the cache folder
		wantSource string
	}{
		{name: "flag, absolute", flag: "/opt/models", env: "/srv/models", wantDir: "/opt/models", wantSource: SourceFlag},
		{name: "flag, relative to cwd", flag: "weights", wantDir: "weights", wantSource: SourceFlag},
		{name: "env", env: "/srv/models", wantDir: "/srv/models", wantSource: SourceEnv},
		{name: "env, relative to cwd", env: "w", wantDir: "w", wantSource: SourceEnv},
		{
			name: "env beats ./models",
			env:  "/srv/models",
			setup: func(t *testing.T, cwd string) {
				writeFile(t, filepath.Join(cwd, "models", "detr-resnet-50.onnx"), nil)
			},
			wantDir: "/srv/models", wantSource: SourceEnv,
		},
		{
			name: "./models holding a model",
			setup: func(t *testing.T, cwd string) {
				writeFile(t, filepath.Join(cwd, "models", "other.ONNX"), nil)
			},
			wantDir: "models", wantSource: SourceLocal,
		},
		{
			name: "./models without models (the source folder)",
			setup: func(t *testing.T, cwd string) {
				writeFile(t, filepath.Join(cwd, "models", "registry.go"), nil)
				writeFile(t, filepath.Join(cwd, "models", "trap.onnx", "x"), nil)
			},
			wantDir: "CACHE", wantSource: SourceCache,
		},
		{name: "no ./models", wantDir: "CACHE", wantSource: SourceCache},
		{name: "no cache folder", cacheErr: errors.New("$HOME is not defined"), wantDir: "models", wantSource: SourceLocal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cwd := t.TempDir()
			cache := filepath.Join(t.TempDir(), "cache")
			withCacheDir(t, cache, tt.cacheErr)
			if tt.setup != nil {
				tt.setup(t, cwd)
			}
			getenv := func(k string) string {
				if k == EnvModelsDir {
					return tt.env
				}
				return ""
			}
			want := tt.wantDir
			switch {
			case want == "CACHE":
				want = filepath.Join(cache, "anonymize", "models")
			case !filepath.IsAbs(want):
				want = filepath.Join(cwd, want)
			}
			dir, source := ResolveDir(tt.flag, getenv, cwd)
			if dir != want || source != tt.wantSource {
				t.Errorf("ResolveDir = %s (%s), want %s (%s)", dir, source, want, tt.wantSource)
			}
		})
	}
}

func TestFind(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "detr-resnet-50.onnx"), []byte("x"))
	if err := os.Mkdir(filepath.Join(dir, "transpose-h-a4-256x192.onnx"), 0o755); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "mine.onnx")
	writeFile(t, other, []byte("y"))
	empty := t.TempDir()

	tests := []struct {
		name     string
		role     Role
		override string
		dir      string
		want     string
		wantErr  []string
	}{
		{name: "in the folder", role: RoleDetector, dir: dir, want: filepath.Join(dir, "detr-resnet-50.onnx")},
		{name: "override", role: RolePose, override: other, dir: empty, want: other},
		{
			name: "missing", role: RoleDetector, dir: empty,
			wantErr: []string{
				filepath.Join(empty, "detr-resnet-50.onnx"),
				"model folder from " + SourceEnv,
				"`anonymize models pull detr-resnet-50`",
				"`python3 models/export/export_detr.py --out " + empty + "`",
				"--detector-model PATH",
			},
		},
		{
			name: "missing pose", role: RolePose, dir: empty,
			wantErr: []string{"`anonymize models pull transpose-h-a4`", "export_transpose.py", "--pose-model PATH"},
		},
		{name: "override missing", role: RolePose, override: other + ".gone", dir: dir, wantErr: []string{"--pose-model " + other + ".gone"}},
		{name: "folder in the way", role: RolePose, dir: dir, wantErr: []string{"is a folder"}},
		{name: "unknown role", role: "segmenter", dir: dir, wantErr: []string{`no model for role "segmenter"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Find(tt.role, tt.override, tt.dir, SourceEnv)
			if tt.wantErr == nil {
				if err != nil || got != tt.want {
					t.Fatalf("Find = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Find = %q, want an error", got)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}

	var missing *MissingError
	if _, err := DetectorPath("", empty, SourceCache); !errors.As(err, &missing) || missing.Model.Name != "detr-resnet-50" {
		t.Errorf("DetectorPath in an empty folder: %v, want a MissingError for detr-resnet-50", err)
	}
	if _, err := PosePath("", empty, SourceCache); !errors.As(err, &missing) || missing.Model.Name != "transpose-h-a4" {
		t.Errorf("PosePath in an empty folder: %v, want a MissingError for transpose-h-a4", err)
	}
}

func TestModelPath(t *testing.T) {
	for _, m := range Registry {
		if got, want := ModelPath("d", m.Role), filepath.Join("d", m.File); got != want {
			t.Errorf("ModelPath(d, %s) = %s, want %s", m.Role, got, want)
		}
	}
	if got := ModelPath("d", "segmenter"); got != "" {
		t.Errorf("ModelPath for an unknown role = %q, want empty", got)
	}
}

func TestList(t *testing.T) {
	detr := []byte("detr weights")
	pose := []byte("pose weights")
	mine := []byte("my own detector")
	stray := []byte("an old export")

	manifest := func(entries ...ManifestEntry) []byte {
		t.Helper()
		data, err := json.Marshal(Manifest{Models: entries})
		if err != nil {
			t.Fatal(err)
		}
		return data
	}

	type row struct {
		name     string
		present  bool
		size     int
		sum      string
		manifest ManifestMatch
	}
	tests := []struct {
		name  string
		files map[string][]byte // nil: the folder does not exist
		want  []row
	}{
		{
			name: "no folder",
			want: []row{{name: "detr-resnet-50"}, {name: "transpose-h-a4"}},
		},
		{
			name:  "one model, no manifest",
			files: map[string][]byte{"detr-resnet-50.onnx": detr, "notes.txt": []byte("x")},
			want: []row{
				{name: "detr-resnet-50", present: true, size: len(detr), sum: sha(detr)},
				{name: "transpose-h-a4"},
			},
		},
		{
			name: "with manifest cache",
			files: map[string][]byte{
				"detr-resnet-50.onnx":         detr,
				"transpose-h-a4-256x192.onnx": pose,
				"mine.onnx":                   mine,
				"stray.onnx":                  stray,
				"detr-resnet-50.onnx.part":    []byte("half"),
				ManifestFile: manifest(
					ManifestEntry{Name: "detr-resnet-50", SHA256: sha(detr)},
					ManifestEntry{Name: "transpose-h-a4", SHA256: sha(detr)},
					ManifestEntry{Name: "mine-v2", File: "mine.onnx", SHA256: sha(mine)},
				),
			},
			want: []row{
				{name: "detr-resnet-50", present: true, size: len(detr), sum: sha(detr), manifest: ManifestMatches},
				{name: "transpose-h-a4", present: true, size: len(pose), sum: sha(pose), manifest: ManifestDiffers},
				{name: "mine", present: true, size: len(mine), sum: sha(mine), manifest: ManifestMatches},
				{name: "stray", present: true, size: len(stray), sum: sha(stray), manifest: NotInManifest},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "models")
			for name, data := range tt.files {
				writeFile(t, filepath.Join(dir, name), data)
			}
			got, err := List(dir)
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("List returned %d entries (%+v), want %d", len(got), got, len(tt.want))
			}
			for i, w := range tt.want {
				g := got[i]
				r := row{name: g.Name, present: g.Present, size: int(g.Size), sum: g.SHA256, manifest: g.Manifest}
				if r != w {
					t.Errorf("entry %d = %+v, want %+v", i, r, w)
				}
				if _, err := Lookup(g.Name); (err == nil) != g.Known {
					t.Errorf("entry %s: Known = %v, but Lookup says %v", g.Name, g.Known, err)
				}
			}
		})
	}
}

func TestListMalformedManifestCache(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, ManifestFile), []byte("{not json"))
	_, err := List(dir)
	if err == nil || !strings.Contains(err.Error(), "delete it, or pull a model again") {
		t.Fatalf("List error = %v, want one saying how to fix the cache", err)
	}
}
