package pipeline

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/anonymize-dev/anonymize/detect"
	"github.com/anonymize-dev/anonymize/inference"
	"github.com/anonymize-dev/anonymize/mask"
	"github.com/anonymize-dev/anonymize/pose"
	"github.com/anonymize-dev/anonymize/track"
	"github.com/anonymize-dev/anonymize/video"
)

// Config is everything a run can be told, one field per command-line flag.
// Validate names the flag at fault.
type Config struct {
	Device        inference.Device // --device
	DetectorModel string           // --detector-model
	PoseModel     string           // --pose-model
	TRTCache      string           // --trt-cache ("": the user cache folder)
	Preprocess    Preprocess       // --preprocess

	Threshold    float64       // --threshold
	PersonClass  int           // --person-class (0: the COCO label set)
	TrackLow     float64       // --track-low
	Hold         time.Duration // --hold
	DetectSize   int           // --detect-size (short side; the long side limit keeps DETR's 800:1333)
	Batch        int           // --batch: frames per detector run (0: DefaultGPUBatch on a GPU, 1 on the CPU)
	PoseBatch    int           // --pose-batch
	KptThreshold float64       // --kpt-threshold
	MaskScale    float64       // --mask-scale

	CRF            int                // --crf
	Preset         video.Preset       // --preset
	Encoder        video.Codec        // --encoder
	EncoderThreads int                // --encoder-threads (0: the encoder's own choice)
	Audio          video.AudioMode    // --audio
	Subtitles      video.SubtitleMode // --subtitles

	Frames int  // --frames (0: all)
	Draw   bool // --draw

	Audit         AuditMode // --audit
	AuditEvery    int       // --audit-every: the sample's interval in frames
	AuditEvidence string    // --audit-evidence
	QueueSize     int       // frames buffered between stages (not a flag)
}

// DefaultConfig holds every default in one place.
func DefaultConfig() Config {
	d, p, m, t := detect.DefaultConfig(), pose.DefaultConfig(), mask.DefaultConfig(), track.DefaultConfig()
	return Config{
		Device:       inference.Device{Kind: inference.DeviceAuto},
		Preprocess:   PreprocessAuto,
		Threshold:    d.Threshold,
		TrackLow:     t.Low,
		Hold:         t.Hold,
		DetectSize:   d.ShortSide,
		PoseBatch:    p.BatchSize,
		KptThreshold: m.KptThreshold,
		MaskScale:    m.Scale,
		CRF:          video.DefaultCRF,
		Preset:       video.DefaultPreset,
		Encoder:      video.CodecAuto,
		Audio:        video.AudioCopy,
		Subtitles:    video.SubtitlesCopy,
		Audit:        AuditSample,
		AuditEvery:   30,
		QueueSize:    4,
	}
}

// AuditMode is how much of the output the leak audit searches (--audit).
type AuditMode string

// Audit modes.
const (
	AuditOff    AuditMode = "off"
	AuditSample AuditMode = "sample" // one frame in --audit-every, and where tracks are born or end
	AuditFull   AuditMode = "full"   // every frame
)

// Set parses an --audit value, as a pflag.Value.
func (a *AuditMode) Set(s string) error { return setChoice(a, s, AuditOff, AuditSample, AuditFull) }

func (a AuditMode) String() string { return string(a) }

// Type names the value in the flag's help.
func (*AuditMode) Type() string { return "mode" }

// setChoice sets v to s when s is one of choices: the Set of the flag
// values that are one word from a list.
func setChoice[T ~string](v *T, s string, choices ...T) error {
	if !slices.Contains(choices, T(s)) {
		words := make([]string, len(choices))
		for i, c := range choices {
			words[i] = string(c)
		}
		return fmt.Errorf("use one of %s", strings.Join(words, ", "))
	}
	*v = T(s)
	return nil
}

// auditEvery is how often the audit samples, 0 when it is off.
func (c Config) auditEvery() int {
	switch c.Audit {
	case AuditSample:
		return c.AuditEvery
	case AuditFull:
		return 1
	}
	return 0
}

// Validate checks every setting and names the flag at fault. The flags
// whose values are words (--device, --encoder, ...) are checked as they
// are parsed, by their types; Validate checks them again for a Config
// built in code.
func (c Config) Validate() error {
	if _, err := inference.ParseDevice(c.Device.String()); err != nil {
		return fmt.Errorf("--device: %w", err)
	}
	switch {
	case !(c.Threshold > 0 && c.Threshold <= 1): // also rejects NaN
		return fmt.Errorf("--threshold %g: must be above 0 and at most 1", c.Threshold)
	case !(c.TrackLow > 0 && c.TrackLow <= 1):
		return fmt.Errorf("--track-low %g: must be above 0 and at most 1", c.TrackLow)
	case c.Hold < 0 || c.Hold > 10*time.Second:
		return fmt.Errorf("--hold %v: must be between 0 (no tracking masks) and 10s", c.Hold)
	case c.PersonClass < 0:
		return fmt.Errorf("--person-class %d: must not be negative (0 means the COCO label set, where person is 1)", c.PersonClass)
	case c.DetectSize < 32 || c.DetectSize > 4096:
		return fmt.Errorf("--detect-size %d: must be between 32 and 4096 pixels", c.DetectSize)
	case c.Batch < 0 || c.Batch > 64:
		return fmt.Errorf("--batch %d: must be between 1 and 64 frames, or 0 for the device's default", c.Batch)
	case c.PoseBatch < 1 || c.PoseBatch > 1024:
		return fmt.Errorf("--pose-batch %d: must be between 1 and 1024", c.PoseBatch)
	case !(c.KptThreshold >= 0 && c.KptThreshold <= 1):
		return fmt.Errorf("--kpt-threshold %g: must be between 0 and 1", c.KptThreshold)
	case !(c.MaskScale > 0 && c.MaskScale <= 10):
		return fmt.Errorf("--mask-scale %g: must be above 0 and at most 10", c.MaskScale)
	case c.CRF < video.MinCRF || c.CRF > video.MaxCRF:
		return fmt.Errorf("--crf %d: must be between %d (best quality) and %d", c.CRF, video.MinCRF, video.MaxCRF)
	case c.Frames < 0:
		return fmt.Errorf("--frames %d: must not be negative", c.Frames)
	case c.EncoderThreads < 0 || c.EncoderThreads > 256:
		return fmt.Errorf("--encoder-threads %d: must be between 0 (the encoder's choice) and 256", c.EncoderThreads)
	}
	words := []struct {
		flag string
		v    interface{ Set(string) error }
		s    string
	}{
		{"--preset", new(video.Preset), c.Preset.String()},
		{"--preprocess", new(Preprocess), c.Preprocess.String()},
		{"--encoder", new(video.Codec), c.Encoder.String()},
		{"--audio", new(video.AudioMode), c.Audio.String()},
		{"--subtitles", new(video.SubtitleMode), c.Subtitles.String()},
		{"--audit", new(AuditMode), c.Audit.String()},
	}
	for _, w := range words {
		if err := w.v.Set(w.s); err != nil {
			return fmt.Errorf("%s: %w", w.flag, err)
		}
	}
	if c.AuditEvery < 1 {
		return fmt.Errorf("--audit-every %d: must be at least 1", c.AuditEvery)
	}
	// The stages' own configurations, built from these flags, check
	// themselves too; their messages name the flag.
	if err := c.detectConfig(c.Batch).Validate(); err != nil {
		return fmt.Errorf("--threshold, --track-low, --detect-size, --person-class or --batch: %w", err)
	}
	if err := c.poseConfig().Validate(); err != nil {
		return fmt.Errorf("--pose-batch: %w", err)
	}
	if err := c.maskConfig().Validate(); err != nil {
		return fmt.Errorf("--kpt-threshold or --mask-scale: %w", err)
	}
	if err := c.trackConfig(1).Config.Validate(); err != nil {
		return fmt.Errorf("--threshold, --track-low or --hold: %w", err)
	}
	return nil
}

// detectConfig is the detector's configuration for batches of batch frames.
func (c Config) detectConfig(batch int) detect.Config {
	d := detect.DefaultConfig()
	long := d.LongSide * c.DetectSize / d.ShortSide
	// The detector keeps the low-score boxes too: tracking decides which
	// of them are people (those that continue a track).
	return detect.Config{Threshold: min(c.Threshold, c.TrackLow), ShortSide: c.DetectSize, LongSide: long,
		PersonClass: c.PersonClass, Batch: batch}
}

// DefaultGPUBatch is --batch on a GPU: enough frames per run to fill the
// GPU between two of them (DETR-R50 at 800x1333 is about 86 GFLOPs a
// frame), few enough that an input of four 12 MB frames stays small. On
// the CPU a batch gains nothing (ONNX Runtime already uses every core on
// one frame) and costs memory, so it is 1 there.
const DefaultGPUBatch = 4

// detectBatch is --batch resolved for a detector running on provider.
func (c Config) detectBatch(provider string) int {
	switch {
	case c.Batch > 0:
		return c.Batch
	case provider == inference.ProviderCPU:
		return 1
	}
	return DefaultGPUBatch
}

func (c Config) poseConfig() pose.Config {
	p := pose.DefaultConfig()
	p.BatchSize = c.PoseBatch
	return p
}

func (c Config) maskConfig() mask.Config {
	m := mask.DefaultConfig()
	m.KptThreshold = c.KptThreshold
	m.Scale = c.MaskScale
	return m
}

// growRate is TrackConfig.GrowRate: held and backfilled masks grow by the
// person's height (their box's longer side) per second.
const growRate = 1.0

// trackConfig is the tracking stage's configuration for a video whose
// frames come at up to peakFPS.
func (c Config) trackConfig(peakFPS float64) TrackConfig {
	t := track.DefaultConfig()
	t.High, t.Low, t.Hold = c.Threshold, min(c.TrackLow, c.Threshold), c.Hold
	return TrackConfig{Config: t, GrowRate: growRate, Window: int(math.Ceil(c.Hold.Seconds()*peakFPS)) + 1}
}
