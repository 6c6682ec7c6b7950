package inference_test

import (
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/anonymize-dev/anonymize/inference"
	"github.com/anonymize-dev/anonymize/internal/testmodels"
)

// TestOutputsAreReused: a second run with the same key writes into the
// first run's tensors, another key gets its own, and the results are the
// run's own every time.
func TestOutputsAreReused(t *testing.T) {
	_, pose := testmodels.NullSessions(t)
	outs := inference.NewOutputs()
	defer outs.Close()
	input := func(n int64) *ort.Tensor[float32] {
		in, err := ort.NewEmptyTensor[float32](ort.NewShape(n, 3, 256, 192))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { in.Destroy() })
		return in
	}
	one, two := input(1), input(2)

	first, err := outs.Run(pose, 1, []ort.Value{one})
	if err != nil {
		t.Fatal(err)
	}
	hm := first[0].(*ort.Tensor[float32])
	hm.GetData()[0] = 42 // overwritten by the next run
	again, err := outs.Run(pose, 1, []ort.Value{one})
	if err != nil {
		t.Fatal(err)
	}
	if again[0] != first[0] {
		t.Error("the second run of key 1 did not reuse the first run's tensor")
	}
	if v := hm.GetData()[0]; v != 0 {
		t.Errorf("heatmap value %v after the second run, want the model's 0", v)
	}
	pair, err := outs.Run(pose, 2, []ort.Value{two})
	if err != nil {
		t.Fatal(err)
	}
	if pair[0] == first[0] || pair[0].(*ort.Tensor[float32]).GetShape()[0] != 2 {
		t.Errorf("key 2 got %v, want its own tensor of batch 2", pair[0].(*ort.Tensor[float32]).GetShape())
	}
	// A key whose kept outputs no longer fit (here: a batch of 2 under
	// key 1) falls back to fresh ones.
	moved, err := outs.Run(pose, 1, []ort.Value{two})
	if err != nil {
		t.Fatalf("run with outputs of another shape: %v", err)
	}
	if got := moved[0].(*ort.Tensor[float32]).GetShape()[0]; got != 2 {
		t.Errorf("batch %d after the shape changed, want 2", got)
	}
	if err := outs.Close(); err != nil {
		t.Fatal(err)
	}
}
