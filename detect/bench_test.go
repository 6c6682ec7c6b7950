package detect

import (
	"context"
	"image"
	"testing"

	"gocv.io/x/gocv"

	"github.com/anonymize-dev/anonymize/inference"
	"github.com/anonymize-dev/anonymize/internal/testmodels"
	"github.com/anonymize-dev/anonymize/models/synthetic"
)

func benchFrame(b *testing.B, w, h int) gocv.Mat {
	b.Helper()
	frame := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(120, 118, 122, 0), h, w, gocv.MatTypeCV8UC3)
	fill(&frame, image.Rect(w/10, h/5, w/4, h*9/10), synthetic.BodyColours[0])
	b.Cleanup(func() { frame.Close() })
	return frame
}

// benchDetector opens the synthetic detector on the CPU.
func benchDetector(b *testing.B) *Detector {
	b.Helper()
	detSess, _ := testmodels.SyntheticSessions(b)
	d, err := New(detSess, DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	return d
}

// BenchmarkDetect1080p times one 1080p frame through preprocessing, the
// synthetic DETR on ONNX Runtime (CPU) and post-processing.
func BenchmarkDetect1080p(b *testing.B) {
	d := benchDetector(b)
	frame := benchFrame(b, 1920, 1080)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := d.Detect(context.Background(), frame); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPreprocess1080p times resizing a 1080p frame to 1333x750 and
// packing it into the normalised tensor.
func BenchmarkPreprocess1080p(b *testing.B) {
	d := benchDetector(b)
	frame := benchFrame(b, 1920, 1080)
	batch, p := d.NewBatch(), d.NewPreparer()
	defer batch.Close()
	defer p.Close()
	if err := batch.Fit(1920, 1080); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := p.Prepare(context.Background(), frame, batch, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPackImageNet times only the HWC uint8 to CHW float conversion.
func BenchmarkPackImageNet(b *testing.B) {
	const w, h = 1333, 750
	src := make([]uint8, 3*w*h)
	dst := make([]float32, 3*w*h)
	b.SetBytes(int64(len(src)))
	for i := 0; i < b.N; i++ {
		if err := inference.PackImageNet(dst, src, w, h, 3*w); err != nil {
			b.Fatal(err)
		}
	}
}
