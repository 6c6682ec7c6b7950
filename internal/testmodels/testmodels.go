// Package testmodels opens the synthetic models through the real ONNX
// Runtime for the tests of the packages that feed them.
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
	rt, err := inference.Load(inference.LibrarySearch{Flag: testutil.ORTLib(t)}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	detPath, posePath, err := synthetic.WriteModels(t.TempDir())
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
