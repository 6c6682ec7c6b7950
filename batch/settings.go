package batch

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
	"strconv"

	"github.com/anonymize-dev/anonymize/pipeline"
)

// settingsFormat versions what SettingsHash covers and how outputs are
// produced from it: raise it when a change to the code makes earlier
// outputs stale, and every batch redoes its files.
//
//   - 2: frames keep their own timestamps (variable frame rates), portrait
//     videos are written upright, subtitles are copied; people are tracked
//     and masks held and backfilled.
const settingsFormat = 2

// Every pipeline.Config field either changes an output, and is in
// hashedSettings, or is listed in unhashedFields with the reason it does
// not. TestSettingsClassified fails on a field that is neither, so a new
// setting cannot silently leave stale outputs counted as done, and checks
// that each hashed field moves the hash and each unhashed one does not.
var hashedFields = []string{
	"Threshold", "PersonClass", "TrackLow", "Hold", "DetectSize", "KptThreshold", "MaskScale",
	"CRF", "Preset", "Encoder", "Audio", "Subtitles", "Frames", "Draw",
}

var unhashedFields = map[string]string{
	"Device":         "the same models give the same results up to float noise on any device",
	"DetectorModel":  "a path: the model's sha256 is hashed, wherever the file lies",
	"PoseModel":      "a path: the model's sha256 is hashed, wherever the file lies",
	"TRTCache":       "where TensorRT's engines are kept",
	"Preprocess":     "hashed through the detector's model entry, marked :fused",
	"Batch":          "throughput only",
	"PoseBatch":      "throughput only",
	"EncoderThreads": "x264's speed and, a little, its bitstream; not the quality or the masks",
	"Audit":          "the audit reads the output, it does not change it",
	"AuditEvery":     "the audit reads the output, it does not change it",
	"AuditEvidence":  "the audit reads the output, it does not change it",
	"QueueSize":      "throughput only",
}

// hashedSettings is everything that changes an output's content (see
// hashedFields).
type hashedSettings struct {
	Format       int      `json:"format"`
	Models       []string `json:"models"`    // "role:sha256", sorted
	Threshold    string   `json:"threshold"` // floats as strconv 'g' text: NaN has no JSON number
	PersonClass  int      `json:"person_class"`
	TrackLow     string   `json:"track_low"`
	HoldNanos    int64    `json:"hold_ns"`
	DetectSize   int      `json:"detect_size"`
	KptThreshold string   `json:"kpt_threshold"`
	MaskScale    string   `json:"mask_scale"`
	CRF          int      `json:"crf"`
	Preset       string   `json:"preset"`
	Encoder      string   `json:"encoder"`
	Audio        string   `json:"audio"`
	Subtitles    string   `json:"subtitles"`
	Frames       int      `json:"frames"`
	Draw         bool     `json:"draw"`
}

// SettingsHash returns the hex sha256 of a canonical JSON encoding of the
// settings that change an output (see hashedSettings) and of the models'
// sha256s. A finished file whose recorded hash differs is redone.
func SettingsHash(cfg pipeline.Config, models []pipeline.ModelRef) string {
	s := hashedSettings{
		Format:       settingsFormat,
		Models:       make([]string, 0, len(models)),
		Threshold:    formatFloat(cfg.Threshold),
		PersonClass:  cfg.PersonClass,
		TrackLow:     formatFloat(cfg.TrackLow),
		HoldNanos:    int64(cfg.Hold),
		DetectSize:   cfg.DetectSize,
		KptThreshold: formatFloat(cfg.KptThreshold),
		MaskScale:    formatFloat(cfg.MaskScale),
		CRF:          cfg.CRF,
		Preset:       cfg.Preset.String(),
		Encoder:      cfg.Encoder.String(),
		Audio:        cfg.Audio.String(),
		Subtitles:    cfg.Subtitles.String(),
		Frames:       cfg.Frames,
		Draw:         cfg.Draw,
	}
	for _, m := range models {
		id := string(m.Role) + ":" + m.SHA256
		if m.Fused {
			// Pre-processed on the GPU, the detector's input differs by
			// about half a level of colour: outputs may differ.
			id += ":fused"
		}
		s.Models = append(s.Models, id)
	}
	sort.Strings(s.Models)
	// A struct of strings, ints and bools encodes the same way every
	// time, in field order, and cannot fail.
	b, _ := json.Marshal(s)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
