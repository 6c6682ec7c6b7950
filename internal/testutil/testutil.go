package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	ort "github.com/yalue/onnxruntime_go"
)

// RequireEnv, when set to 1 (make test sets it), turns every "missing
// dependency" skip into a failure, so CI cannot pass by skipping.
const RequireEnv = "ANONYMIZE_TEST_REQUIRE"

// RepoRoot returns the repository root (the folder holding go.mod).
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate testutil source file")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Missing skips the test because something it needs is absent, or fails it
// when the run demands that everything be present.
func Missing(t testing.TB, what, fix string) {
	t.Helper()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("%s is missing (%s); %s=1 forbids skipping", what, fix, RequireEnv)
	}
	t.Skipf("%s is missing: %s", what, fix)
}

// ORTLib returns the path of the ONNX Runtime shared library: the
// ANONYMIZE_ORT_LIB variable, else the copy `make setup` fetched.
func ORTLib(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("ANONYMIZE_ORT_LIB"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("ANONYMIZE_ORT_LIB=%s: %v", p, err)
		}
		return p
	}
	p := filepath.Join(RepoRoot(t), ".deps", "onnxruntime", "1.24.1", "libonnxruntime.so.1")
	if _, err := os.Stat(p); err != nil {
		Missing(t, "ONNX Runtime library", "run `make setup` or set ANONYMIZE_ORT_LIB")
	}
	return p
}

// Tool returns the path of an executable on PATH (ffmpeg, ffprobe).
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, name, "run `make setup` (apt-get install ffmpeg)")
	}
	return p
}

var (
	ortOnce sync.Once
	ortErr  error
)

// InitORT initialises ONNX Runtime directly (without the inference
// package) once per test binary, for tests of packages below inference.
// The environment is process-wide and cannot be initialised twice, so a
// test binary uses either this or inference.Load, never both.
func InitORT(t testing.TB) {
	t.Helper()
	lib := ORTLib(t)
	ortOnce.Do(func() {
		ort.SetSharedLibraryPath(lib)
		ortErr = ort.InitializeEnvironment()
	})
	if ortErr != nil {
		t.Fatalf("initialise ONNX Runtime from %s: %v", lib, ortErr)
	}
}

// DirNames lists the names in dir, sorted.
func DirNames(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names
}

// AuditModel returns the leak audit's face detector, which `make setup`
// installs into models/.
func AuditModel(t testing.TB) string {
	t.Helper()
	p := filepath.Join(RepoRoot(t), "models", "blazeface-back-256.onnx")
	if _, err := os.Stat(p); err != nil {
		Missing(t, p, "run `make setup` (scripts/fetch-blazeface.sh)")
	}
	return p
}

// Photo returns a photograph from testdata/photos, which `make testdata`
// extracts from Debian's opencv-doc package.
func Photo(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(RepoRoot(t), "testdata", "photos", name)
	if _, err := os.Stat(p); err != nil {
		Missing(t, p, "run `make testdata`")
	}
	return p
}
