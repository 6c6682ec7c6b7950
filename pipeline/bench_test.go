package pipeline

import (
	"context"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/anonymize-dev/anonymize/detect"
	"github.com/anonymize-dev/anonymize/geom"
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

// keptInputs hands out the same detector inputs to every run, as a
// detector that lives longer than one run would: each run otherwise
// allocates its own (three of 12 MB at 1080p), a cost per video that a
// benchmark of a few hundred frames would report as a cost per frame.
type keptInputs struct {
	Detector
	kept []DetectorInput
	next int
}

func (d *keptInputs) NewInput() (DetectorInput, error) {
	if d.next == len(d.kept) {
		in, err := d.Detector.NewInput()
		if err != nil {
			return nil, err
		}
		d.kept = append(d.kept, in)
	}
	d.next++
	return unclosed{d.kept[d.next-1]}, nil
}

// reset starts a new run.
func (d *keptInputs) reset() { d.next = 0 }

func (d *keptInputs) close() {
	for _, in := range d.kept {
		in.Close()
	}
}

// unclosed is a kept input, which the run must not close; the detector
// and its preparers get the input inside.
type unclosed struct{ DetectorInput }

func (unclosed) Close() error { return nil }

func (d *keptInputs) Run(ctxs []context.Context, in DetectorInput) ([][]geom.Detection, error) {
	return d.Detector.Run(ctxs, in.(unclosed).DetectorInput)
}

func (d *keptInputs) NewPreparer() (Preparer, error) {
	p, err := d.Detector.NewPreparer()
	return unwrapping{p}, err
}

type unwrapping struct{ Preparer }

func (p unwrapping) Prepare(ctx context.Context, frame gocv.Mat, in DetectorInput, row int) error {
	return p.Preparer.Prepare(ctx, frame, in.(unclosed).DetectorInput, row)
}

// BenchmarkRunStages1080p runs b.N frames of the 1080p scene through every
// stage with the null models (three people a frame, near-zero model cost)
// and no sink work: the pipeline's own cost per frame, and its Go
// allocations per frame (-benchmem), which should stay near zero.
func BenchmarkRunStages1080p(b *testing.B) {
	models, pe := openModels(b, testmodels.NullSessions, 1, 8)
	det := &keptInputs{Detector: models}
	defer det.close()
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
	det.reset()

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

// openModels wraps a pair of sessions in a detector that runs detBatch
// frames at a time and an estimator that sends poseBatch crops at a time,
// closed when the test ends.
func openModels(tb testing.TB, sessions func(testing.TB) (det, pose *inference.Session), detBatch, poseBatch int) (Detector, *pose.Estimator) {
	tb.Helper()
	detSess, poseSess := sessions(tb)
	dc := detect.DefaultConfig()
	dc.Batch = detBatch
	det, err := detect.New(detSess, dc)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { det.Close() })
	pe, err := pose.New(poseSess, pose.Config{BatchSize: poseBatch, Padding: 1.25})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { pe.Close() })
	return DETR(det), pe
}
