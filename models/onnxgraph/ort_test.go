package onnxgraph_test

import (
	"os"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/anonymize-dev/anonymize/internal/testutil"
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
