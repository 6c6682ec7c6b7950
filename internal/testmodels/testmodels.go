package testmodels

import (
	"log/slog"
	"testing"

	"github.com/anonymize-dev/anonymize/inference"
	"github.com/anonymize-dev/anonymize/internal/testutil"
	"github.com/anonymize-dev/anonymize/models"
	"github.com/anonymize-dev/anonymize/models/synthetic"
)

// SyntheticSessions loads ONNX Runtime and opens the synthetic detector and
// pose models on the CPU, closing them when the test ends.
func SyntheticSessions(t testing.TB) (det, pose *inference.Session) {
	t.Helper()
	return openPair(t, synthetic.WriteModels)
}

// NullSessions opens the null models (near-zero cost, three fixed people
// per frame) on the CPU: for benchmarks of the pipeline's own work.
func NullSessions(t testing.TB) (det, pose *inference.Session) {
	t.Helper()
	return openPair(t, synthetic.WriteNullModels)
}

func openPair(t testing.TB, write func(dir string) (string, string, error)) (det, pose *inference.Session) {
	t.Helper()
	rt, err := inference.Load(inference.LibrarySearch{Flag: testutil.ORTLib(t)}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	detPath, posePath, err := write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cpu := inference.Device{Kind: inference.DeviceCPU}
	det, err = rt.OpenSession(inference.SessionOptions{Role: "detector", Path: detPath, Contract: models.DETR, Device: cpu})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { det.Close() })
	pose, err = rt.OpenSession(inference.SessionOptions{Role: "pose", Path: posePath, Contract: models.TransPose, Device: cpu})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pose.Close() })
	return det, pose
}
