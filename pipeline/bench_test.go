package pipeline

import (
	"context"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/anonymize-dev/anonymize/detect"
	"github.com/anonymize-dev/anonymize/inference"
	"github.com/anonymize-dev/anonymize/internal/synthclip"
	"github.com/anonymize-dev/anonymize/internal/testmodels"
	"github.com/anonymize-dev/anonymize/mask"
	"github.com/anonymize-dev/anonymize/pose"
)

// copySource hands out copies of one rendered frame, as a decoder fills
// the pool's Mats, without the decoding.
type copySource struct {
	frame gocv.Mat
	next  int
}

func (s *copySource) Read(dst *gocv.Mat) (time.Duration, error) {
	s.frame.CopyTo(dst)
	s.next++
	return time.Duration(s.next) * time.Second / 30, nil
}

// BenchmarkRunStages1080p runs b.N frames of the 1080p scene through every
// stage with the null models (three people a frame, near-zero model cost)
// and no sink work: the pipeline's own cost per frame, and its Go
// allocations per frame (-benchmem), which should stay near zero.
func BenchmarkRunStages1080p(b *testing.B) {
	det, pe := openModels(b, testmodels.NullSessions, 8)
	scene := synthclip.DefaultScene(1920, 1080, 2)
	src := &copySource{frame: gocv.NewMat()}
	defer src.frame.Close()
	scene.Render(1, &src.frame)
	cfg := StageConfig{QueueSize: 4, Mask: mask.DefaultConfig(), Track: DefaultConfig().trackConfig(30), MaxFrames: 3}
	// The detector and estimator allocate their tensors at the first
	// frame; the steady state is what a long video sees.
	if _, err := RunStages(context.Background(), cfg, src, det, pe, discardSink{}, nil); err != nil {
		b.Fatal(err)
	}
	cfg.MaxFrames = b.N

	b.ReportAllocs()
	b.ResetTimer()
	stats, err := RunStages(context.Background(), cfg, src, det, pe, discardSink{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	if stats.Frames != b.N || stats.People != 3*b.N {
		b.Fatalf("%d frames with %d people, want %d with 3 each", stats.Frames, stats.People, b.N)
	}
}

// openModels wraps a pair of sessions in a detector and an estimator that
// sends poseBatch crops at a time, closed when the test ends.
func openModels(tb testing.TB, sessions func(testing.TB) (det, pose *inference.Session), poseBatch int) (*detect.Detector, *pose.Estimator) {
	tb.Helper()
	detSess, poseSess := sessions(tb)
	det, err := detect.New(detSess, detect.DefaultConfig())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { det.Close() })
	pe, err := pose.New(poseSess, pose.Config{BatchSize: poseBatch, Padding: 1.25})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { pe.Close() })
	return det, pe
}
