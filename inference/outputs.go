package inference

import (
	"errors"

	ort "github.com/yalue/onnxruntime_go"
)

// Outputs keeps one user's output tensors of a session from one run to the
// next, so that ONNX Runtime writes each frame's results into them rather
// than allocating new ones (which the Go binding then copies into new Go
// memory): a 1080p run otherwise allocated some 700 KB a frame, mostly
// pose heatmaps. Sessions are shared between videos, so each detector or
// estimator owns its own Outputs. Not safe for concurrent use.
type Outputs struct {
	byKey map[int64][]ort.Value
}

// NewOutputs returns an empty set.
func NewOutputs() *Outputs { return &Outputs{byKey: map[int64][]ort.Value{}} }

// Run runs s on inputs and returns its outputs, written into the tensors
// kept under key. key must tell apart inputs of different shapes (the batch
// size; the image size where it varies), as output shapes follow them.
// The first run of a key lets ONNX Runtime allocate and keeps
// what it returned. The values belong to o: they are valid until the next
// Run with the same key or Close, and must not be destroyed by the caller.
// There is one set per key, so memory is bounded by the keys used.
func (o *Outputs) Run(s *Session, key int64, inputs []ort.Value) ([]ort.Value, error) {
	if kept, ok := o.byKey[key]; ok {
		if err := s.Run(inputs, kept); err == nil {
			return kept, nil
		}
		// An output whose shape changed (a model whose query count
		// follows its input, say) cannot be written into the kept
		// tensor: start again with fresh ones, and report the error of
		// that run if it fails too.
		destroyValues(kept)
		delete(o.byKey, key)
	}
	out := make([]ort.Value, len(s.Binding.Outputs))
	if err := s.Run(inputs, out); err != nil {
		destroyValues(out)
		return nil, err
	}
	o.byKey[key] = out
	return out, nil
}

// Close frees every kept tensor.
func (o *Outputs) Close() error {
	var errs []error
	for key, vs := range o.byKey {
		errs = append(errs, destroyValues(vs))
		delete(o.byKey, key)
	}
	return errors.Join(errs...)
}

func destroyValues(vs []ort.Value) error {
	var errs []error
	for _, v := range vs {
		if v != nil {
			errs = append(errs, v.Destroy())
		}
	}
	return errors.Join(errs...)
}
