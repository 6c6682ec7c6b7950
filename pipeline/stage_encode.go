package pipeline

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/anonymize-dev/anonymize/geom"
	"github.com/anonymize-dev/anonymize/mask"
	"github.com/anonymize-dev/anonymize/telemetry"
)

// encoding masks each frame, audits it when the sample takes it, writes it
// and ends its trace.
type encoding struct {
	fl      *flow
	cfg     StageConfig
	sink    FrameSink
	stats   *Stats
	onFrame func(FrameResult)
	regions []geom.Region
}

func (s *encoding) run(ctx context.Context, in <-chan *frame) error {
	for f := range in {
		if err := ctx.Err(); err != nil {
			// Another stage failed: the output will be discarded, so
			// only drain what is left.
			s.fl.release(f, err)
			continue
		}
		if err := s.write(f); err != nil {
			s.fl.release(f, err)
			return err
		}
		s.fl.free <- f.mat // never blocks: the channel holds the whole pool
	}
	return nil
}

func (s *encoding) write(f *frame) error {
	tracer := s.fl.tracer
	f.waited(tracer, "wait_for_encode")
	masks := s.applyMasks(f)
	leaks, audited, err := auditFrame(tracer, f, s.cfg.Audit, s.fl.in)
	if err != nil {
		return fmt.Errorf("frame %d: %w", f.index, err)
	}
	if audited {
		s.stats.Audit.add(f, leaks)
	}
	_, es := tracer.Start(f.ctx, "encode")
	err = s.sink.WriteFrame(f.mat, f.pts)
	telemetry.EndSpan(es, err)
	if err != nil {
		return fmt.Errorf("encode frame %d: %w", f.index, err)
	}
	f.span.SetAttributes(attribute.Int("people.count", len(f.people)))
	if s.cfg.GPUMemory != nil {
		if b, ok := s.cfg.GPUMemory(); ok {
			f.span.SetAttributes(attribute.Int64("gpu.process.memory.usage", b))
		}
	}
	recordFrame(f.ctx, s.fl.in, len(f.people), masks)
	f.span.End()
	s.stats.add(len(f.people), masks)
	if s.onFrame != nil {
		s.onFrame(FrameResult{Index: f.index, People: f.people, Masks: f.masks, Audited: audited, Leaks: leaks})
	}
	return nil
}

// applyMasks blacks out every mask of f (the detected people's, then
// those tracking added) and draws the debug view; it returns the tally.
func (s *encoding) applyMasks(f *frame) mask.Counts {
	_, span := s.fl.tracer.Start(f.ctx, "mask")
	defer span.End()
	var counts mask.Counts
	s.regions = s.regions[:0]
	for _, p := range f.people {
		s.regions = append(s.regions, p.Mask)
		counts.Add(p.Mask)
	}
	for _, r := range f.masks {
		s.regions = append(s.regions, r)
		counts.Add(r)
	}
	mask.Apply(&f.mat, s.regions)
	if s.cfg.Draw {
		for _, p := range f.people {
			mask.DrawDebug(&f.mat, p.Detection, p.Pose, p.TrackID, s.cfg.Mask.KptThreshold)
		}
	}
	span.SetAttributes(attribute.Int("masks", len(s.regions)), attribute.Int("masks.held", counts.Held),
		attribute.Int("masks.backfilled", counts.Backfilled))
	return counts
}

func attrOptions(key string, values ...string) map[string]metric.MeasurementOption {
	out := make(map[string]metric.MeasurementOption, len(values))
	for _, v := range values {
		out[v] = metric.WithAttributeSet(attribute.NewSet(attribute.String(key, v)))
	}
	return out
}

// Series of the counters a run can add to, by instrument.
var (
	maskKinds     = []string{string(geom.MaskNose), string(geom.MaskFaceKeypoints), string(geom.MaskHeadBox), string(geom.MaskHeld), string(geom.MaskBackfilled)}
	fallbackKinds = []string{string(geom.MaskFaceKeypoints), string(geom.MaskHeadBox), mask.FallbackRadiusFloor}
	outcomes      = []string{telemetry.OutcomeOK, telemetry.OutcomeFailed, telemetry.OutcomeCancelled}
)

// Attribute sets of those series, built once: recording happens on the
// frame path and should not allocate them every time.
var (
	outcomeAttrs = attrOptions(telemetry.AttrOutcome, outcomes...)
	kindAttrs    = attrOptions(telemetry.AttrKind, append(append([]string(nil), maskKinds...), fallbackKinds...)...)
)

// startCounters adds 0 to every series of the run's counters before its
// first frame. A series otherwise appears at its first increment, so a
// query over a short run found no rate at all (rate() needs two points),
// and "failed frames" read "No data" rather than 0 until one failed.
func startCounters(ctx context.Context, in *telemetry.Instruments) {
	for _, o := range outcomes {
		in.Frames.Add(ctx, 0, outcomeAttrs[o])
	}
	for _, k := range maskKinds {
		in.Masks.Add(ctx, 0, kindAttrs[k])
	}
	for _, k := range fallbackKinds {
		in.MaskFallbacks.Add(ctx, 0, kindAttrs[k])
	}
	in.AuditFrames.Add(ctx, 0)
	in.AuditLeaks.Add(ctx, 0)
}

// recordFrame records a written frame's metrics, in the frame's context so
// exemplars point at its trace.
func recordFrame(ctx context.Context, in *telemetry.Instruments, people int, c mask.Counts) {
	n := int64(people)
	in.DetectedPeople.Record(ctx, n)
	in.PeoplePerFrame.Record(ctx, n)
	in.Frames.Add(ctx, 1, outcomeAttrs[telemetry.OutcomeOK])
	add := func(inst metric.Int64Counter, kind string, v int) {
		if v > 0 {
			inst.Add(ctx, int64(v), kindAttrs[kind])
		}
	}
	add(in.Masks, string(geom.MaskNose), c.Nose)
	add(in.Masks, string(geom.MaskFaceKeypoints), c.FaceKeypoints)
	add(in.Masks, string(geom.MaskHeadBox), c.HeadBox)
	add(in.Masks, string(geom.MaskHeld), c.Held)
	add(in.Masks, string(geom.MaskBackfilled), c.Backfilled)
	add(in.MaskFallbacks, string(geom.MaskFaceKeypoints), c.FaceKeypoints)
	add(in.MaskFallbacks, string(geom.MaskHeadBox), c.HeadBox)
	add(in.MaskFallbacks, mask.FallbackRadiusFloor, c.RadiusFloor)
}
