package audit

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"gocv.io/x/gocv"

	"github.com/anonymize-dev/anonymize/geom"
)

// ModelFile is the face detector's file name in the model folder, where
// `make setup` (scripts/fetch-blazeface.sh) installs it.
const ModelFile = "blazeface-back-256.onnx"

// EnvModel names the variable that points at the face detector, as
// --audit-model does.
const EnvModel = "ANONYMIZE_AUDIT_MODEL"

// FindModel returns the face detector to use: override (--audit-model, or
// $ANONYMIZE_AUDIT_MODEL) when given, else ModelFile in the model folder
// dir (chosen from source, as models.ResolveDir says), or an error saying
// how to get it.
func FindModel(override, dir, source string) (string, error) {
	path := override
	if path == "" {
		path = filepath.Join(dir, ModelFile)
	}
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && override != "":
		return "", fmt.Errorf("audit model %s (from --audit-model or $%s): no such file", override, EnvModel)
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("the audit's face detector is not at %s (model folder from %s): run `make setup`, "+
			"or scripts/fetch-blazeface.sh %s, or pass --audit-model PATH", path, source, dir)
	case err != nil:
		return "", fmt.Errorf("audit model: %w", err)
	case st.IsDir():
		return "", fmt.Errorf("audit model %s is a folder, not a model file", path)
	}
	return path, nil
}

// Leak is a face found in a frame that was meant to have none.
type Leak struct {
	Frame int           `json:"frame"`
	Time  time.Duration `json:"-"`
	// TimeSeconds is Time for JSON readers.
	TimeSeconds float64  `json:"time_s"`
	Box         geom.Box `json:"box"`
	Score       float32  `json:"score"`
}

// FrameSource is what the audit reads: frames with their times, io.EOF at
// the end (video.Reader is one).
type FrameSource interface {
	Read(dst *gocv.Mat) (time.Duration, error)
}

// VideoOptions says which frames of a video to audit.
type VideoOptions struct {
	// Every audits one frame in Every (1: all of them).
	Every int
	// Evidence, when set, is a folder where a crop of each leaked face is
	// written, as PNG. Leak evidence is itself personal data: nothing is
	// written without it.
	Evidence string
	// Name prefixes evidence files.
	Name string
}

// Result sums up the audit of one video.
type Result struct {
	Frames      int    `json:"frames"`         // frames read
	Audited     int    `json:"frames_audited"` // frames searched for faces
	LeakFrames  int    `json:"frames_with_leaks"`
	Leaks       []Leak `json:"leaks"`
	EvidenceErr string `json:"evidence_error,omitempty"`
}

// LeakRate is the share of audited frames with a leak.
func (r Result) LeakRate() float64 {
	if r.Audited == 0 {
		return 0
	}
	return float64(r.LeakFrames) / float64(r.Audited)
}

// Video audits the frames of src as opts says.
func (d *Detector) Video(ctx context.Context, src FrameSource, opts VideoOptions) (Result, error) {
	every := max(opts.Every, 1)
	var res Result
	m := gocv.NewMat()
	defer m.Close()
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		pts, err := src.Read(&m)
		if errors.Is(err, io.EOF) {
			return res, nil
		}
		if err != nil {
			return res, err
		}
		i := res.Frames
		res.Frames++
		if i%every != 0 {
			continue
		}
		faces, err := d.Faces(m)
		if err != nil {
			return res, fmt.Errorf("frame %d: %w", i, err)
		}
		res.Audited++
		if len(faces) > 0 {
			res.LeakFrames++
		}
		for k, f := range faces {
			res.Leaks = append(res.Leaks, Leak{Frame: i, Time: pts, TimeSeconds: pts.Seconds(), Box: f.Box, Score: f.Score})
			if opts.Evidence != "" && res.EvidenceErr == "" {
				if err := WriteEvidence(m, f.Box, filepath.Join(opts.Evidence, fmt.Sprintf("%s-frame%06d-face%d.png", opts.Name, i, k))); err != nil {
					res.EvidenceErr = err.Error()
				}
			}
		}
	}
}

// WriteEvidence saves the face's box, grown by half, as a PNG.
func WriteEvidence(frame gocv.Mat, b geom.Box, path string) error {
	r := b.Rect()
	r = r.Inset(-max(r.Dx(), r.Dy()) / 4).Intersect(image.Rect(0, 0, frame.Cols(), frame.Rows()))
	if r.Empty() {
		return nil
	}
	crop := frame.Region(r)
	defer crop.Close()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("audit evidence: %w", err)
	}
	if !gocv.IMWrite(path, crop) {
		return fmt.Errorf("audit evidence: cannot write %s", path)
	}
	return nil
}
