package models

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestRegistry(t *testing.T) {
	names, files, roles := map[string]bool{}, map[string]bool{}, map[Role]int{}
	for _, m := range Registry {
		if names[m.Name] || files[m.File] {
			t.Errorf("%s: name or file %s used twice", m.Name, m.File)
		}
		names[m.Name], files[m.File] = true, true
		roles[m.Role]++
		if !isONNX(m.File) || !safeFileName(m.File) {
			t.Errorf("%s: file %q is not a plain .onnx name", m.Name, m.File)
		}
		if _, err := os.Stat(filepath.Join("..", m.Export)); err != nil {
			t.Errorf("%s: export script: %v", m.Name, err)
		}
		if m.Description == "" || m.Upstream == "" || !strings.HasPrefix(m.Flag, "--") || len(m.Contract.Inputs) == 0 {
			t.Errorf("%s: incomplete entry %+v", m.Name, m)
		}
		if got, err := Lookup(m.Name); err != nil || got.Name != m.Name {
			t.Errorf("Lookup(%q) = %v, %v", m.Name, got.Name, err)
		}
		if !strings.Contains(m.HowToObtain(), "anonymize models pull "+m.Name) || !strings.Contains(m.HowToObtain(), m.Export) {
			t.Errorf("%s: HowToObtain %q names neither the pull command nor the export script", m.Name, m.HowToObtain())
		}
	}
	for _, r := range []Role{RoleDetector, RolePose} {
		if roles[r] != 1 {
			t.Errorf("%d models fill role %s, want 1", roles[r], r)
		}
		if m, err := ForRole(r); err != nil || m.Role != r {
			t.Errorf("ForRole(%s) = %v, %v", r, m.Name, err)
		}
	}
	if _, err := Lookup("yolo"); err == nil || !strings.Contains(err.Error(), "detr-resnet-50, transpose-h-a4") {
		t.Errorf("Lookup of an unknown name: %v, want an error listing the known names", err)
	}
}

// The export scripts write the files the program looks for; their copy of
// the registry must not drift from this one.
func TestExportRegistryInStep(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("export", "registry.py"))
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile(`(?s)MODELS = \{(.*?)\n\}`).FindSubmatch(src)
	if block == nil {
		t.Fatal("export/registry.py: no MODELS = {...} block")
	}
	py := map[string]string{}
	for _, m := range regexp.MustCompile(`"([^"]+)":\s*"([^"]+)"`).FindAllSubmatch(block[1], -1) {
		py[string(m[1])] = string(m[2])
	}
	if len(py) != len(Registry) {
		t.Errorf("export/registry.py lists %d models, the registry %d", len(py), len(Registry))
	}
	for _, m := range Registry {
		if py[m.Name] != m.File {
			t.Errorf("export/registry.py maps %s to %q, the registry to %q", m.Name, py[m.Name], m.File)
		}
	}
}

// manifest.py is what hosts run; what it writes must be a manifest that
// Pull accepts and that names the registry models correctly.
func TestManifestScript(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed; the export scripts are not checked")
	}
	env := append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")

	// Compile every script without leaving __pycache__ in the source tree.
	scripts, _ := filepath.Glob(filepath.Join("export", "*.py"))
	if len(scripts) == 0 {
		t.Fatal("no scripts in export/")
	}
	for _, s := range scripts {
		cmd := exec.Command(python, "-c", "import sys; compile(open(sys.argv[1]).read(), sys.argv[1], 'exec')", s)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s does not compile: %v\n%s", s, err, out)
		}
	}

	dir := t.TempDir()
	files := map[string][]byte{
		"detr-resnet-50.onnx":         []byte("detector"),
		"transpose-h-a4-256x192.onnx": []byte("pose"),
		"extra.onnx":                  []byte("something else"),
		".hidden.onnx.tmp":            []byte("unfinished export"),
		"README.txt":                  []byte("not a model"),
	}
	for name, data := range files {
		writeFile(t, filepath.Join(dir, name), data)
	}
	cmd := exec.Command(python, filepath.Join("export", "manifest.py"), dir)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("manifest.py: %v\n%s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseManifest(data)
	if err != nil {
		t.Fatalf("manifest.py wrote a manifest Pull rejects: %v\n%s", err, data)
	}
	want := map[string]string{"detr-resnet-50": "detr-resnet-50.onnx", "transpose-h-a4": "transpose-h-a4-256x192.onnx", "extra": "extra.onnx"}
	if len(m.Models) != len(want) {
		t.Errorf("manifest lists %v, want %v", m.Names(), want)
	}
	for name, file := range want {
		e, ok := m.Find(name)
		if !ok {
			t.Errorf("manifest lacks %s", name)
			continue
		}
		if e.File != file || e.URL != file || e.SHA256 != sha(files[file]) || e.Size != int64(len(files[file])) {
			t.Errorf("manifest entry %+v, want file and url %s, sha256 %s, size %d", e, file, sha(files[file]), len(files[file]))
		}
	}

	// A folder with a manifest beside its models is itself a model folder
	// whose files List can verify.
	list, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, inst := range list {
		if inst.Manifest != ManifestMatches {
			t.Errorf("List: %s is %v", inst.Name, inst.Manifest)
		}
	}
}
