package batch

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/anonymize-dev/anonymize/internal/atomicfile"
	"github.com/anonymize-dev/anonymize/pipeline"
)

// ReportSchemaVersion is the report format written; raise it on any
// change that a reader of older reports would misread.
//
//   - 2: files and totals carry the leak audit's results; masks count held
//     and backfilled ones; the video gives its orientation and a
//     "variable" frame rate. Version 1 reports are still read (merged).
const ReportSchemaVersion = 2

// ReportSchema is the JSON Schema (draft 2020-12) of the audit report.
//
//go:embed report.schema.json
var ReportSchema []byte

// Status is where a file of the batch stands.
type Status string

const (
	StatusDone    Status = "done"    // processed by this run
	StatusSkipped Status = "skipped" // already done by an earlier run
	StatusFailed  Status = "failed"  // processing failed; see Error
	StatusPending Status = "pending" // not processed (yet)
	StatusRunning Status = "running" // being processed when the report was written
)

// Reason says why the plan does or skips a file.
type Reason string

const (
	ReasonNew             Reason = "new"              // no earlier run finished it
	ReasonInputChanged    Reason = "input_changed"    // size or mtime differ from the state
	ReasonSettingsChanged Reason = "settings_changed" // the settings hash differs
	ReasonOutputMissing   Reason = "output_missing"   // the output was deleted
	ReasonOutputChanged   Reason = "output_changed"   // the output's size differs, or its path
	ReasonForced          Reason = "forced"           // Options.Force
	ReasonAlreadyDone     Reason = "already_done"     // skipped
)

// RunStatus says how far the run that wrote a report got.
type RunStatus string

const (
	// RunRunning: the run was going when it wrote the report; a report
	// still saying so afterwards is from a run that was killed.
	RunRunning     RunStatus = "running"
	RunFinished    RunStatus = "finished"    // every file was tried
	RunInterrupted RunStatus = "interrupted" // cancelled (Ctrl-C, SIGTERM)
	RunStopped     RunStatus = "stopped"     // FailFast stopped it at a failure
	RunError       RunStatus = "error"       // the batch itself failed (state or report not writable)
)

// Report is the audit report of a batch run (or of several shards'
// runs, merged). report.schema.json documents each field.
type Report struct {
	SchemaVersion     int               `json:"schema_version"`
	ToolVersion       string            `json:"tool_version"`
	RunStatus         RunStatus         `json:"run_status"`
	Started           time.Time         `json:"started"`
	Updated           time.Time         `json:"updated"`
	InDir             string            `json:"in_dir"`
	OutDir            string            `json:"out_dir"`
	Shard             *ShardSpec        `json:"shard,omitempty"`
	Settings          map[string]string `json:"settings"`
	SettingsHash      string            `json:"settings_hash"`
	Device            string            `json:"device"`
	ExecutionProvider string            `json:"execution_provider"`
	Models            []ModelInfo       `json:"models"`
	MergedFrom        []MergedSource    `json:"merged_from,omitempty"`
	MissingShards     []int             `json:"missing_shards,omitempty"`
	Totals            Totals            `json:"totals"`
	Files             []FileReport      `json:"files"`
}

// ModelInfo identifies one model the run used.
type ModelInfo struct {
	Role      string `json:"role"`
	Path      string `json:"path"`
	SHA256    string `json:"sha256"`
	Provider  string `json:"provider"`
	Synthetic bool   `json:"synthetic"`
}

// MergedSource is one shard report that went into a merged report.
type MergedSource struct {
	Path         string    `json:"path"`
	Shard        ShardSpec `json:"shard"`
	SettingsHash string    `json:"settings_hash"`
	RunStatus    RunStatus `json:"run_status"`
	ToolVersion  string    `json:"tool_version"`
	Device       string    `json:"device"`
}

// Totals sums up the files of a report.
type Totals struct {
	Files FileCounts `json:"files"`
	// Frames and People count what this run wrote (done files only);
	// FramesInOutputs adds the skipped files' frames where known.
	Frames          int     `json:"frames"`
	FramesInOutputs int     `json:"frames_in_outputs"`
	People          int     `json:"people"`
	WallSeconds     float64 `json:"wall_s"`
	FPS             float64 `json:"fps"`
	// Audit sums up the leak audit over the files done; absent when no
	// file was audited.
	Audit *AuditTotals `json:"audit,omitempty"`
}

// AuditTotals sums up the leak audit over a batch.
type AuditTotals struct {
	FramesAudited   int `json:"frames_audited"`
	FramesWithLeaks int `json:"frames_with_leaks"`
	FilesWithLeaks  int `json:"files_with_leaks"`
}

// AuditReport is the leak audit of one file's output.
type AuditReport struct {
	FramesAudited   int `json:"frames_audited"`
	FramesWithLeaks int `json:"frames_with_leaks"`
	Faces           int `json:"faces"`
	// FirstLeaks are the first faces found, at most maxReportedLeaks.
	FirstLeaks []LeakReport `json:"first_leaks"`
}

// LeakReport is a face the audit found in an output frame.
type LeakReport struct {
	Frame       int     `json:"frame"`
	TimeSeconds float64 `json:"time_s"`
	Score       float64 `json:"score"`
	Box         [4]int  `json:"box"` // x1, y1, x2, y2 in pixels
}

// maxReportedLeaks bounds the leaks listed per file (all are counted).
const maxReportedLeaks = 10

// FileCounts counts files by status.
type FileCounts struct {
	Total   int `json:"total"`
	Done    int `json:"done"`
	Skipped int `json:"skipped"`
	Failed  int `json:"failed"`
	Pending int `json:"pending"`
	Running int `json:"running"`
}

// FileReport is one file of the batch.
type FileReport struct {
	Input         string        `json:"input"`
	Output        string        `json:"output"`
	Status        Status        `json:"status"`
	Reason        Reason        `json:"reason"`
	Error         string        `json:"error,omitempty"`
	InputSize     int64         `json:"input_size"`
	InputMtime    time.Time     `json:"input_mtime"`
	OutputSize    int64         `json:"output_size,omitempty"`
	OutputSHA256  string        `json:"output_sha256,omitempty"`
	Video         *VideoReport  `json:"video,omitempty"`
	Frames        int           `json:"frames"`
	People        *PeopleReport `json:"people,omitempty"`
	Masks         *MaskReport   `json:"masks,omitempty"`
	Audit         *AuditReport  `json:"audit,omitempty"`
	Encoder       string        `json:"encoder,omitempty"`
	WallSeconds   float64       `json:"wall_s"`
	ProcessingFPS float64       `json:"processing_fps"`
	Started       *time.Time    `json:"started,omitempty"`
	Finished      *time.Time    `json:"finished,omitempty"`
}

// VideoReport describes an input video as probed.
type VideoReport struct {
	Width    int     `json:"width"`
	Height   int     `json:"height"`
	FPS      string  `json:"fps"` // "variable" for a variable frame rate
	FPSValue float64 `json:"fps_value"`
	// Orientation is how players turn the stored picture ("turned 90°
	// clockwise"); the output is written upright. Empty when as coded.
	Orientation     string  `json:"orientation,omitempty"`
	DurationSeconds float64 `json:"duration_s"`
	FrameCount      int     `json:"frame_count"`
	Codec           string  `json:"codec"`
	HasAudio        bool    `json:"has_audio"`
}

// PeopleReport sums up the person detections of a file's frames.
type PeopleReport struct {
	Total            int     `json:"total"`
	Min              int     `json:"min"`
	Mean             float64 `json:"mean"`
	Max              int     `json:"max"`
	FramesWithPeople int     `json:"frames_with_people"`
}

// MaskReport counts a file's masks by how they were placed.
type MaskReport struct {
	Nose          int `json:"nose"`
	FaceKeypoints int `json:"face_keypoints"`
	HeadBox       int `json:"head_box"`
	RadiusFloor   int `json:"radius_floor"`
	Fallbacks     int `json:"fallbacks"`
	// Held and Backfilled are the masks tracking added where the detector
	// found nobody.
	Held       int `json:"held"`
	Backfilled int `json:"backfilled"`
}

// reportFileName is where a shard's report goes in OUT_DIR.
func reportFileName(s ShardSpec) string {
	if suf := s.suffix(); suf != "" {
		return "anonymize-report." + suf + ".json"
	}
	return "anonymize-report.json"
}

// fillResult copies what ProcessVideo returned into f; it also serves a
// failed file, whose Result holds what was known when it failed.
func (f *FileReport) fillResult(res pipeline.Result, wall time.Duration) {
	in := res.Input
	if in.Width > 0 || in.Codec != "" || in.FPS.Valid() {
		f.Video = &VideoReport{
			Width: in.Width, Height: in.Height,
			FPS: in.FPS.String(), FPSValue: in.FPS.Float(),
			DurationSeconds: in.Duration.Seconds(),
			FrameCount:      in.FrameCount, Codec: in.Codec, HasAudio: in.HasAudio,
		}
		if in.VariableRate {
			f.Video.FPS = "variable"
		}
		if !in.Orientation.IsIdentity() {
			f.Video.Orientation = in.Orientation.String()
		}
	}
	s := res.Stats
	f.Frames = s.Frames
	if s.Frames > 0 {
		f.People = &PeopleReport{
			Total: s.People, Min: s.MinPeople, Max: s.MaxPeople,
			Mean:             float64(s.People) / float64(s.Frames),
			FramesWithPeople: s.FramesWithPeople,
		}
		m := s.Masks
		f.Masks = &MaskReport{Nose: m.Nose, FaceKeypoints: m.FaceKeypoints, HeadBox: m.HeadBox,
			RadiusFloor: m.RadiusFloor, Fallbacks: m.Fallbacks(), Held: m.Held, Backfilled: m.Backfilled}
	}
	if a := s.Audit; a.Frames > 0 {
		f.Audit = &AuditReport{FramesAudited: a.Frames, FramesWithLeaks: a.LeakFrames, Faces: a.Faces, FirstLeaks: []LeakReport{}}
		for _, l := range a.Leaks[:min(len(a.Leaks), maxReportedLeaks)] {
			r := l.Box.Rect()
			f.Audit.FirstLeaks = append(f.Audit.FirstLeaks, LeakReport{Frame: l.Frame, TimeSeconds: l.TimeSeconds,
				Score: float64(l.Score), Box: [4]int{r.Min.X, r.Min.Y, r.Max.X, r.Max.Y}})
		}
	}
	f.Encoder = res.Encoder
	f.WallSeconds = wall.Seconds()
	if wall > 0 {
		f.ProcessingFPS = float64(s.Frames) / wall.Seconds()
	}
}

func (t *Totals) addAudit(a *AuditReport) {
	if a == nil {
		return
	}
	if t.Audit == nil {
		t.Audit = &AuditTotals{}
	}
	t.Audit.FramesAudited += a.FramesAudited
	t.Audit.FramesWithLeaks += a.FramesWithLeaks
	if a.FramesWithLeaks > 0 {
		t.Audit.FilesWithLeaks++
	}
}

// computeTotals recounts the totals from the files; the wall time is the
// span from the first start to the last update, which for shards that ran
// side by side is the time the whole dataset took.
func computeTotals(files []FileReport, started, updated time.Time) Totals {
	var t Totals
	for _, f := range files {
		t.Files.Total++
		switch f.Status {
		case StatusDone:
			t.Files.Done++
			t.Frames += f.Frames
			t.FramesInOutputs += f.Frames
			if f.People != nil {
				t.People += f.People.Total
			}
			t.addAudit(f.Audit)
		case StatusSkipped:
			t.Files.Skipped++
			t.FramesInOutputs += f.Frames
		case StatusFailed:
			t.Files.Failed++
			t.addAudit(f.Audit) // --audit-fail fails a file for its leaks
		case StatusRunning:
			t.Files.Running++
		default:
			t.Files.Pending++
		}
	}
	if wall := updated.Sub(started); wall > 0 {
		t.WallSeconds = wall.Seconds()
		t.FPS = float64(t.Frames) / t.WallSeconds
	}
	return t
}

func encodeReport(r *Report) ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode report: %w", err)
	}
	return append(b, '\n'), nil
}

// reportEncoder encodes a report whose files change one at a time, as a
// run rewrites its report after every file: each file's JSON is kept and
// encoded again only after invalidate, so a rewrite does not re-encode
// every earlier file. The bytes are those of encodeReport.
type reportEncoder struct {
	frags [][]byte // per file, indented as inside the files array; nil: to encode
}

// invalidate marks file i as changed.
func (e *reportEncoder) invalidate(i int) {
	if i < len(e.frags) {
		e.frags[i] = nil
	}
}

func (e *reportEncoder) encode(r *Report) ([]byte, error) {
	if len(e.frags) != len(r.Files) {
		e.frags = make([][]byte, len(r.Files))
	}
	empty := *r
	empty.Files = []FileReport{}
	b, err := json.MarshalIndent(&empty, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode report: %w", err)
	}
	if len(r.Files) == 0 {
		return append(b, '\n'), nil
	}
	// Files is the last field, so the header ends with `"files": []` and
	// the closing brace; the array goes in its place.
	head := bytes.TrimSuffix(b, []byte("[]\n}"))
	size := len(head) + len("[\n  ]\n}\n")
	for i := range r.Files {
		if e.frags[i] == nil {
			if e.frags[i], err = json.MarshalIndent(&r.Files[i], "    ", "  "); err != nil {
				return nil, fmt.Errorf("encode report: %w", err)
			}
		}
		size += len("    ,\n") + len(e.frags[i])
	}
	out := make([]byte, 0, size)
	out = append(append(out, head...), "[\n"...)
	for i, frag := range e.frags {
		out = append(append(out, "    "...), frag...)
		if i < len(e.frags)-1 {
			out = append(out, ',')
		}
		out = append(out, '\n')
	}
	return append(out, "  ]\n}\n"...), nil
}

// EncodeReport writes r as indented JSON to w (standard output, say).
func EncodeReport(w io.Writer, r Report) error {
	b, err := encodeReport(&r)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// WriteReport writes r to path atomically.
func WriteReport(path string, r Report) error {
	b, err := encodeReport(&r)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b, 0o644)
}

// ReadReport reads a report written by this or an earlier version.
func ReadReport(path string) (Report, error) {
	var r Report
	b, err := os.ReadFile(path)
	if err != nil {
		return r, fmt.Errorf("read report: %w", err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("read report %s: not a batch report: %w", path, err)
	}
	if r.SchemaVersion < 1 || r.SchemaVersion > ReportSchemaVersion {
		return r, fmt.Errorf("read report %s: schema version %d is not one this version reads (1 to %d); use a newer anonymize",
			path, r.SchemaVersion, ReportSchemaVersion)
	}
	return r, nil
}
