package telemetry

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
)

// ScopeName is the instrumentation scope of the pipeline's own metrics.
const ScopeName = "github.com/anonymize-dev/anonymize"

// Metric names. Units follow UCUM as OpenTelemetry asks: "s" for
// durations, "{person}" and the like for counts of things.
const (
	MetricDetectedPeople = "anonymize.detected_people"
	MetricPeoplePerFrame = "anonymize.people_per_frame"
	MetricFrames         = "anonymize.frames"
	MetricMasks          = "anonymize.masks"
	MetricMaskFallbacks  = "anonymize.mask.fallbacks"
	MetricStageDuration  = "anonymize.stage.duration"
	MetricAuditFrames    = "anonymize.audit.frames"
	MetricAuditLeaks     = "anonymize.audit.leaks"
	MetricRuns           = "anonymize.runs"
	MetricBatchFiles     = "anonymize.batch.files"
)

// Attribute keys of the pipeline's metrics.
const (
	AttrOutcome = "outcome" // frames: ok, failed, cancelled
	AttrKind    = "kind"    // masks and fallbacks
	AttrStage   = "stage"   // stage durations
	AttrStatus  = "status"  // runs, batch files
)

// Frame outcomes.
const (
	OutcomeOK        = "ok"
	OutcomeFailed    = "failed"
	OutcomeCancelled = "cancelled"
)

// Run statuses: a run counts once as started when its telemetry is set
// up, and once more under how it ended.
const (
	RunStarted     = "started"
	RunSucceeded   = "succeeded"   // exit status 0
	RunFailed      = "failed"      // any other exit status but an interruption's
	RunInterrupted = "interrupted" // a signal, or a cancelled context
)

// RunStatuses lists every status series of MetricRuns.
var RunStatuses = []string{RunStarted, RunSucceeded, RunFailed, RunInterrupted}

// Batch file statuses: how a file a batch processed ended (files skipped
// as already done, or cut short by an interruption, are not counted).
const (
	FileDone   = "done"
	FileFailed = "failed"
)

// PeopleBuckets bound the people-per-frame histogram: fine steps where most
// footage is (a handful of people), coarse ones for crowds.
var PeopleBuckets = []float64{0, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50, 100}

// DurationBuckets bound the stage-duration histogram in seconds, from a
// sub-millisecond mask to a multi-second CPU inference.
var DurationBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Instruments are the pipeline's synchronous metrics. They come from the
// global MeterProvider: no-ops until a command installs an SDK.
type Instruments struct {
	// DetectedPeople is recorded once per frame: a gauge, not an
	// up-down counter, because "people in this frame" is a level.
	DetectedPeople metric.Int64Gauge
	PeoplePerFrame metric.Int64Histogram
	Frames         metric.Int64Counter
	Masks          metric.Int64Counter
	MaskFallbacks  metric.Int64Counter
	// AuditFrames counts the frames the leak audit searched, AuditLeaks
	// the faces it found in them.
	AuditFrames metric.Int64Counter
	AuditLeaks  metric.Int64Counter
	// BatchFiles counts the files of `anonymize batch` as each ends.
	BatchFiles metric.Int64Counter
}

// NewInstruments creates the instruments on the global MeterProvider.
func NewInstruments() (*Instruments, error) {
	return NewInstrumentsFrom(otel.GetMeterProvider().Meter(ScopeName))
}

// NewInstrumentsFrom creates the instruments on a given meter.
func NewInstrumentsFrom(m metric.Meter) (*Instruments, error) {
	var (
		in  Instruments
		err error
	)
	if in.DetectedPeople, err = m.Int64Gauge(MetricDetectedPeople, metric.WithUnit("{person}"),
		metric.WithDescription("People detected in the most recent frame.")); err != nil {
		return nil, err
	}
	if in.PeoplePerFrame, err = m.Int64Histogram(MetricPeoplePerFrame, metric.WithUnit("{person}"),
		metric.WithDescription("Distribution of people detected per frame."),
		metric.WithExplicitBucketBoundaries(PeopleBuckets...)); err != nil {
		return nil, err
	}
	if in.Frames, err = m.Int64Counter(MetricFrames, metric.WithUnit("{frame}"),
		metric.WithDescription("Frames processed, by outcome.")); err != nil {
		return nil, err
	}
	if in.Masks, err = m.Int64Counter(MetricMasks, metric.WithUnit("{mask}"),
		metric.WithDescription("Masks drawn, by how they were placed (nose, face_keypoints, head_box, held, backfilled).")); err != nil {
		return nil, err
	}
	if in.MaskFallbacks, err = m.Int64Counter(MetricMaskFallbacks, metric.WithUnit("{mask}"),
		metric.WithDescription("Masks not placed by the nose-and-shoulders rule, by kind.")); err != nil {
		return nil, err
	}
	if in.AuditFrames, err = m.Int64Counter(MetricAuditFrames, metric.WithUnit("{frame}"),
		metric.WithDescription("Output frames the leak audit searched for faces.")); err != nil {
		return nil, err
	}
	if in.AuditLeaks, err = m.Int64Counter(MetricAuditLeaks, metric.WithUnit("{face}"),
		metric.WithDescription("Faces the leak audit found in output frames: each one a leak.")); err != nil {
		return nil, err
	}
	if in.BatchFiles, err = m.Int64Counter(MetricBatchFiles, metric.WithUnit("{file}"),
		metric.WithDescription("Files of batch runs processed, by status (done, failed).")); err != nil {
		return nil, err
	}
	return &in, nil
}
