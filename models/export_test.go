package models_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/anonymize-dev/anonymize/internal/testutil"
	"github.com/anonymize-dev/anonymize/models"
)

// The exports need PyTorch, which CI does not have, so a missing piece is a
// plain skip here (not testutil.Missing, which ANONYMIZE_TEST_REQUIRE=1
// turns into a failure). `make realarch` runs the same exports.

// TestTransPoseRandomInitExport runs export_transpose.py --random-init, the
// same export and checks as with the published weights, and checks the file
// it writes with the contract the program enforces when it loads a pose
// model.
func TestTransPoseRandomInitExport(t *testing.T) {
	path := randomInitExport(t, randomInit{
		script:  "export_transpose.py",
		srcEnv:  "ANONYMIZE_TRANSPOSE_SRC",
		repo:    "yangsenius/TransPose",
		makeVar: "TRANSPOSE_SRC",
		modules: []string{"torch", "onnx", "yaml", "numpy"},
		file:    "transpose-h-a4-256x192.onnx",
	})
	checkExport(t, path, models.TransPose)
}

// TestDETRRandomInitExport is the same for export_detr.py --source, which
// builds DETR from facebookresearch/detr's code without transformers.
func TestDETRRandomInitExport(t *testing.T) {
	path := randomInitExport(t, randomInit{
		script:  "export_detr.py",
		srcEnv:  "ANONYMIZE_DETR_SRC",
		repo:    "facebookresearch/detr",
		makeVar: "DETR_SRC",
		modules: []string{"torch", "torchvision", "onnx", "numpy", "scipy", "PIL", "packaging"},
		file:    "detr-resnet-50.onnx",
	})
	checkExport(t, path, models.DETR)
}

type randomInit struct {
	script  string   // in models/export
	srcEnv  string   // names the upstream checkout
	repo    string   // the upstream repository, for messages
	makeVar string   // the make realarch variable that does the same
	modules []string // what the script imports
	file    string   // what it writes
}

func (r randomInit) howTo() string {
	return fmt.Sprintf("set %s to a checkout of %s at the commit models/export/%s pins, with Python's %s "+
		"installed, or run `make realarch %s=DIR` (see models/README.md)",
		r.srcEnv, r.repo, r.script, strings.Join(r.modules, ", "), r.makeVar)
}

// randomInitExport runs the script with --random-init into a temporary
// folder and returns the file it wrote.
func randomInitExport(t *testing.T, r randomInit) string {
	t.Helper()
	src := os.Getenv(r.srcEnv)
	if src == "" {
		t.Skipf("%s is not set: %s", r.srcEnv, r.howTo())
	}
	python := exportPython(t, r)
	lib := ortLibrary(t)

	out := t.TempDir()
	cmd := exec.Command(python, filepath.Join("export", r.script),
		"--random-init", "--source", src, "--out", out,
		// checkExport replaces `anonymize doctor`, which would build the
		// whole program inside this test.
		"--program-check", "never")
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1", "ANONYMIZE_ORT_LIB="+lib)
	start := time.Now()
	output, err := cmd.CombinedOutput()
	t.Logf("%s --random-init took %s", r.script, time.Since(start).Round(time.Second))
	if err != nil {
		t.Fatalf("%s --random-init: %v\n%s", r.script, err, output)
	}
	// The script compares the file with PyTorch on a batch it was not
	// traced with; make sure that ran rather than being skipped.
	if !bytes.Contains(output, []byte("verification that ran:")) || !bytes.Contains(output, []byte("max |ONNX Runtime - PyTorch|")) {
		t.Errorf("the export's output does not report a comparison with PyTorch:\n%s", output)
	}
	path := filepath.Join(out, r.file)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d bytes", r.file, st.Size())
	return path
}

// checkExport reads what the file declares, as the program does when it
// loads a model, and checks it against contract.
func checkExport(t *testing.T, path string, contract models.Contract) {
	t.Helper()
	inputs, outputs, err := models.FileSignature(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := contract.Check(inputs, outputs); err != nil {
		t.Fatalf("the export does not fit the program's contract: %v", err)
	}
	// The contracts accept a fixed batch (the pipeline then feeds one at a
	// time); the exports must not fix it.
	for _, v := range append(inputs, outputs...) {
		if len(v.Dims) == 0 || v.Dims[0] >= 0 {
			t.Errorf("%s: batch is fixed, want it dynamic", v)
		}
	}
	testutil.InitORT(t)
	if got := metadata(t, path, "anonymize.weights"); !strings.HasPrefix(got, "random") {
		t.Errorf("metadata anonymize.weights = %q, want it to say the weights are random", got)
	}
}

// exportPython returns the first Python that has the script's modules:
// $ANONYMIZE_EXPORT_PYTHON, else python3 on PATH, else Debian's
// /usr/bin/python3 (which a virtual environment or pyenv may hide).
func exportPython(t *testing.T, r randomInit) string {
	t.Helper()
	candidates := []string{"python3", "/usr/bin/python3"}
	if p := os.Getenv("ANONYMIZE_EXPORT_PYTHON"); p != "" {
		candidates = []string{p}
	}
	check := "import importlib.util as u, sys\n" +
		"missing = [m for m in sys.argv[1:] if u.find_spec(m) is None]\n" +
		"print(' '.join(missing)); sys.exit(1 if missing else 0)"
	var why []string
	for _, c := range candidates {
		path, err := exec.LookPath(c)
		if err != nil {
			why = append(why, c+": not found")
			continue
		}
		out, err := exec.Command(path, append([]string{"-c", check}, r.modules...)...).Output()
		if err == nil {
			return path
		}
		var exit *exec.ExitError
		if errors.As(err, &exit) && len(bytes.TrimSpace(out)) > 0 {
			why = append(why, c+" lacks "+strings.TrimSpace(string(out)))
		} else {
			why = append(why, c+": "+err.Error())
		}
	}
	t.Skipf("no Python with %s (%s): %s", strings.Join(r.modules, ", "), strings.Join(why, "; "), r.howTo())
	return ""
}

// ortLibrary is testutil.ORTLib without its ANONYMIZE_TEST_REQUIRE failure.
func ortLibrary(t *testing.T) string {
	t.Helper()
	lib := os.Getenv("ANONYMIZE_ORT_LIB")
	if lib == "" {
		lib = filepath.Join(testutil.RepoRoot(t), ".deps", "onnxruntime", "1.24.1", "libonnxruntime.so.1")
	}
	if _, err := os.Stat(lib); err != nil {
		t.Skipf("ONNX Runtime library: %v: run `make setup` or set ANONYMIZE_ORT_LIB", err)
	}
	return lib
}

func metadata(t *testing.T, path, key string) string {
	t.Helper()
	md, err := ort.GetModelMetadata(path)
	if err != nil {
		t.Fatalf("read metadata: %v", err)
	}
	defer md.Destroy()
	v, _, err := md.LookupCustomMetadataMap(key)
	if err != nil {
		t.Fatalf("metadata %s: %v", key, err)
	}
	return v
}
