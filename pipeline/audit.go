package pipeline

import (
	"fmt"
	"path/filepath"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"gocv.io/x/gocv"

	"github.com/anonymize-dev/anonymize/audit"
	"github.com/anonymize-dev/anonymize/telemetry"
)

// FaceFinder finds faces in a frame. *audit.Detector is one.
type FaceFinder interface {
	Faces(frame gocv.Mat) ([]audit.Face, error)
}

// AuditConfig says which output frames the leak audit searches.
type AuditConfig struct {
	// Faces is the independent face detector; nil turns the audit off.
	Faces FaceFinder
	// Every audits one frame in Every, and (when above 1) also each frame
	// where a track is born or ends: where a person comes into view or is
	// lost is where a mask is likeliest to be missing.
	Every int
	// Evidence, when set, is a folder for crops of the faces found; Name
	// prefixes their files. Leak evidence is personal data: nothing is
	// written without it.
	Evidence, Name string
}

// maxKeptLeaks bounds the leaks a run keeps to report (all are counted).
const maxKeptLeaks = 100

// AuditStats sums up the audit of a run.
type AuditStats struct {
	Frames     int          // frames searched
	LeakFrames int          // of those, frames with a face found
	Faces      int          // faces found in all
	Leaks      []audit.Leak // the first faces found, at most maxKeptLeaks
}

func (s *AuditStats) add(f *frame, faces []audit.Face) {
	s.Frames++
	if len(faces) > 0 {
		s.LeakFrames++
	}
	s.Faces += len(faces)
	for _, face := range faces {
		if len(s.Leaks) < maxKeptLeaks {
			s.Leaks = append(s.Leaks, audit.Leak{Frame: f.index, Time: f.pts, TimeSeconds: f.pts.Seconds(), Box: face.Box, Score: face.Score})
		}
	}
}

// auditFrame searches the masked frame for faces when the sample takes it,
// under an "audit" span, and records the metrics.
func auditFrame(tracer trace.Tracer, f *frame, cfg AuditConfig, in *telemetry.Instruments) (faces []audit.Face, audited bool, err error) {
	if cfg.Faces == nil {
		return nil, false, nil
	}
	every := max(cfg.Every, 1)
	if f.index%every != 0 && !(every > 1 && f.trackEvent) {
		return nil, false, nil
	}
	_, span := tracer.Start(f.ctx, "audit")
	t0 := time.Now()
	faces, err = cfg.Faces.Faces(f.mat)
	var best float32
	for _, face := range faces {
		best = max(best, face.Score)
	}
	span.SetAttributes(attribute.Int("audit.faces", len(faces)), attribute.Float64("audit.best_score", float64(best)),
		attribute.Float64("audit.ms", float64(time.Since(t0))/float64(time.Millisecond)))
	telemetry.EndSpan(span, err)
	if err != nil {
		return nil, false, err
	}
	in.AuditFrames.Add(f.ctx, 1)
	if len(faces) > 0 {
		in.AuditLeaks.Add(f.ctx, int64(len(faces)))
		f.span.SetAttributes(attribute.Int("audit.leaks", len(faces)))
	}
	if cfg.Evidence != "" {
		for k, face := range faces {
			path := filepath.Join(cfg.Evidence, fmt.Sprintf("%s-frame%06d-face%d.png", cfg.Name, f.index, k))
			if err := audit.WriteEvidence(f.mat, face.Box, path); err != nil {
				return faces, true, err
			}
		}
	}
	return faces, true, nil
}
