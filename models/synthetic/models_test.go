package synthetic_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/anonymize-dev/anonymize/internal/testutil"
	"github.com/anonymize-dev/anonymize/models"
	"github.com/anonymize-dev/anonymize/models/synthetic"
)

var builders = []struct {
	name     string
	build    func() ([]byte, error)
	contract models.Contract
	null     bool // marked as a null model, for benchmarks
}{
	{"detector", synthetic.DetectorModel, models.DETR, false},
	{"pose", synthetic.PoseModel, models.TransPose, false},
	{"null detector", synthetic.NullDetectorModel, models.DETR, true},
	{"null pose", synthetic.NullPoseModel, models.TransPose, true},
}

func TestModelsSatisfyContracts(t *testing.T) {
	for _, tt := range builders {
		t.Run(tt.name, func(t *testing.T) {
			model, err := tt.build()
			if err != nil {
				t.Fatal(err)
			}
			ins, outs := declared(t, model)
			b, err := tt.contract.Check(ins, outs)
			if err != nil {
				t.Fatalf("contract check: %v", err)
			}
			// Every input must be bound, or the pipeline would not feed it.
			if len(b.Inputs) != len(ins) {
				t.Errorf("bound %d of %d inputs: %v", len(b.Inputs), len(ins), b.Inputs)
			}
		})
	}
}

// TestDetectorDeclaresFixedQueries guards what the contract leaves open but
// the pipeline's tests rely on: the synthetic detector's query and class
// counts are fixed in the file, and batch and image size are left free.
func TestDetectorDeclaresFixedQueries(t *testing.T) {
	model, err := synthetic.DetectorModel()
	if err != nil {
		t.Fatal(err)
	}
	ins, outs := declared(t, model)
	want := map[string]string{
		models.DETRPixelValues: "[?,3,?,?]",
		models.DETRPixelMask:   "[?,?,?]",
		models.DETRLogits:      "[?,100,92]",
		models.DETRPredBoxes:   "[?,100,4]",
	}
	for _, info := range append(ins, outs...) {
		got := info.String()[strings.Index(info.String(), "["):]
		if got != want[info.Name] {
			t.Errorf("%s declared %s, want %s", info.Name, got, want[info.Name])
		}
	}
}

func TestModelsCarryMetadata(t *testing.T) {
	for _, tt := range builders {
		t.Run(tt.name, func(t *testing.T) {
			model, err := tt.build()
			if err != nil {
				t.Fatal(err)
			}
			initORT(t)
			md, err := ort.GetModelMetadataWithONNXData(model)
			if err != nil {
				t.Fatalf("read metadata: %v", err)
			}
			defer md.Destroy()
			if v, ok, err := md.LookupCustomMetadataMap(synthetic.MetadataKey); err != nil || !ok || v != "true" {
				t.Errorf("%s = %q (present %v, err %v), want \"true\"", synthetic.MetadataKey, v, ok, err)
			}
			if v, ok, err := md.LookupCustomMetadataMap("description"); err != nil || !ok || !strings.Contains(v, "Synthetic") {
				t.Errorf("description = %q (present %v, err %v), want one saying the model is synthetic", v, ok, err)
			}
			// A program must tell a benchmark stand-in from a demo model.
			if v, ok, err := md.LookupCustomMetadataMap(synthetic.NullMetadataKey); err != nil || (ok && v == "true") != tt.null {
				t.Errorf("%s = %q (present %v, err %v), want null %v", synthetic.NullMetadataKey, v, ok, err, tt.null)
			}
		})
	}
}

func TestModelsAreDeterministic(t *testing.T) {
	for _, tt := range builders {
		t.Run(tt.name, func(t *testing.T) {
			a, errA := tt.build()
			b, errB := tt.build()
			if errA != nil || errB != nil {
				t.Fatalf("build: %v, %v", errA, errB)
			}
			if !bytes.Equal(a, b) {
				t.Error("two builds differ")
			}
		})
	}
}

func TestWriteModels(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "models")
	// Twice: the second run must replace the files cleanly.
	for range 2 {
		detPath, posePath, err := synthetic.WriteModels(dir)
		if err != nil {
			t.Fatalf("WriteModels: %v", err)
		}
		for _, f := range []struct {
			path, name string
			build      func() ([]byte, error)
		}{
			{detPath, synthetic.DetectorFile, synthetic.DetectorModel},
			{posePath, synthetic.PoseFile, synthetic.PoseModel},
		} {
			if f.path != filepath.Join(dir, f.name) {
				t.Errorf("path %s, want %s", f.path, filepath.Join(dir, f.name))
			}
			got, err := os.ReadFile(f.path)
			if err != nil {
				t.Fatal(err)
			}
			want, err := f.build()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s does not hold the model", f.path)
			}
		}
	}
	if names := testutil.DirNames(t, dir); len(names) != 2 {
		t.Errorf("folder holds %v, want only the two models", names)
	}
}

func TestWriteModelsReportsUnwritableFolder(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-folder")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := synthetic.WriteModels(file)
	if err == nil || !strings.Contains(err.Error(), "not-a-folder") {
		t.Fatalf("WriteModels into a file: error %v, want one naming the path", err)
	}
}

// TestCheckedInTestdataIsCurrent guards the files `make testdata` wrote
// (used by the demo and by hand) against a generator that has since changed.
func TestCheckedInTestdataIsCurrent(t *testing.T) {
	dir := filepath.Join(testutil.RepoRoot(t), "testdata", "models")
	for file, build := range map[string]func() ([]byte, error){
		synthetic.DetectorFile: synthetic.DetectorModel,
		synthetic.PoseFile:     synthetic.PoseModel,
	} {
		have, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			testutil.Missing(t, filepath.Join("testdata", "models", file), "run `make testdata`")
			continue
		}
		want, err := build()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(have, want) {
			t.Errorf("testdata/models/%s is stale: run `make testdata` (the Makefile regenerates it when the generator changes)", file)
		}
	}
}
