package onnxgraph_test

import (
	"os"
	"slices"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/anonymize-dev/anonymize/internal/testutil"
	"github.com/anonymize-dev/anonymize/models/onnxgraph"
	"github.com/anonymize-dev/anonymize/models/synthetic"
)

func initORT(t *testing.T) {
	t.Helper()
	testutil.InitORT(t)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if ort.IsInitialized() {
		_ = ort.DestroyEnvironment()
	}
	os.Exit(code)
}

// feed is one named input of a model run.
type feed struct {
	name  string
	value ort.Value
}

func floatInput(t *testing.T, name string, shape []int64, data ...float32) feed {
	t.Helper()
	initORT(t)
	v, err := ort.NewTensor(ort.NewShape(shape...), data)
	if err != nil {
		t.Fatalf("tensor %s: %v", name, err)
	}
	t.Cleanup(func() { _ = v.Destroy() })
	return feed{name, v}
}

func int64Input(t *testing.T, name string, shape []int64, data ...int64) feed {
	t.Helper()
	initORT(t)
	v, err := ort.NewTensor(ort.NewShape(shape...), data)
	if err != nil {
		t.Fatalf("tensor %s: %v", name, err)
	}
	t.Cleanup(func() { _ = v.Destroy() })
	return feed{name, v}
}

// runModel runs model on the real ONNX Runtime and returns the named
// outputs, which the runtime allocates and the test's cleanup frees.
func runModel(t *testing.T, model []byte, inputs []feed, outputs ...string) []ort.Value {
	t.Helper()
	initORT(t)
	names := make([]string, len(inputs))
	values := make([]ort.Value, len(inputs))
	for i, in := range inputs {
		names[i], values[i] = in.name, in.value
	}
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(model, names, outputs, nil)
	if err != nil {
		t.Fatalf("load model: %v", err)
	}
	defer s.Destroy()
	outs := make([]ort.Value, len(outputs))
	if err := s.Run(values, outs); err != nil {
		t.Fatalf("run model: %v", err)
	}
	for _, o := range outs {
		t.Cleanup(func() { _ = o.Destroy() })
	}
	return outs
}

// tensorData returns an output's shape and elements, failing the test when
// the output has another element type.
func tensorData[T ort.TensorData](t *testing.T, v ort.Value) ([]int64, []T) {
	t.Helper()
	tensor, ok := v.(*ort.Tensor[T])
	if !ok {
		t.Fatalf("output is %T, want *ort.Tensor[%T]", v, *new(T))
	}
	return tensor.GetShape(), tensor.GetData()
}

// TestSignatureAgreesWithORT: what Signature reads from a file is what
// ONNX Runtime reports for it (names, types, fixed and symbolic sizes).
func TestSignatureAgreesWithORT(t *testing.T) {
	initORT(t)
	det, err := synthetic.DetectorModel()
	if err != nil {
		t.Fatal(err)
	}
	pose, err := synthetic.PoseModel()
	if err != nil {
		t.Fatal(err)
	}
	for name, model := range map[string][]byte{"detector": det, "pose": pose} {
		t.Run(name, func(t *testing.T) {
			in, out, err := onnxgraph.Signature(model)
			if err != nil {
				t.Fatal(err)
			}
			ortIn, ortOut, err := ort.GetInputOutputInfoWithONNXData(model)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				what string
				ours []onnxgraph.ValueInfo
				ort  []ort.InputOutputInfo
			}{{"inputs", in, ortIn}, {"outputs", out, ortOut}} {
				if len(c.ours) != len(c.ort) {
					t.Fatalf("%s: %d, ONNX Runtime %d", c.what, len(c.ours), len(c.ort))
				}
				for i, o := range c.ort {
					v := c.ours[i]
					if v.Name != o.Name || int(v.Type) != int(o.DataType) || !slices.Equal(v.Dims, []int64(o.Dimensions)) {
						t.Errorf("%s %d: %+v, ONNX Runtime %s %v %v", c.what, i, v, o.Name, o.DataType, o.Dimensions)
					}
				}
			}
		})
	}
}
