package pose

import (
	"context"
	"testing"

	"gocv.io/x/gocv"

	"github.com/anonymize-dev/anonymize/geom"
	"github.com/anonymize-dev/anonymize/internal/testmodels"
)

// BenchmarkEstimate3People times three people of a 1080p frame through
// cropping, the synthetic TransPose on ONNX Runtime (CPU) and decoding.
func BenchmarkEstimate3People(b *testing.B) {
	_, poseSess := testmodels.SyntheticSessions(b)
	est, err := New(poseSess, DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer est.Close()
	frame := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(120, 120, 120, 0), 1080, 1920, gocv.MatTypeCV8UC3)
	defer frame.Close()
	boxes := []geom.Box{{X1: 100, Y1: 200, X2: 400, Y2: 1000}, {X1: 800, Y1: 300, X2: 1000, Y2: 900}, {X1: 1500, Y1: 100, X2: 1600, Y2: 400}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := est.Estimate(context.Background(), frame, boxes); err != nil {
			b.Fatal(err)
		}
	}
}
