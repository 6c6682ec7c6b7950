package synthetic_test

import (
	"os"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/anonymize-dev/anonymize/internal/testutil"
	"github.com/anonymize-dev/anonymize/models"
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

func newFeed[T ort.TensorData](t *testing.T, name string, shape []int64, data []T) feed {
	t.Helper()
	initORT(t)
	v, err := ort.NewTensor(ort.NewShape(shape...), data)
	if err != nil {
		t.Fatalf("tensor %s: %v", name, err)
	}
	t.Cleanup(func() { _ = v.Destroy() })
	return feed{name, v}
}

// runModel runs model on the real ONNX Runtime and returns the named float
// outputs with their shapes.
func runModel(t *testing.T, model []byte, inputs []feed, outputs ...string) (shapes [][]int64, data [][]float32) {
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
	for i, o := range outs {
		defer o.Destroy()
		tensor, ok := o.(*ort.Tensor[float32])
		if !ok {
			t.Fatalf("output %s is %T, want a float32 tensor", outputs[i], o)
		}
		shapes = append(shapes, tensor.GetShape())
		// Copied: the tensor's memory goes away with it.
		data = append(data, append([]float32(nil), tensor.GetData()...))
	}
	return shapes, data
}

// declared reads the tensors a model declares in the form the contracts
// check.
func declared(t *testing.T, model []byte) (inputs, outputs []models.TensorInfo) {
	t.Helper()
	initORT(t)
	ins, outs, err := ort.GetInputOutputInfoWithONNXData(model)
	if err != nil {
		t.Fatalf("read declared tensors: %v", err)
	}
	return tensorInfos(ins), tensorInfos(outs)
}

func tensorInfos(infos []ort.InputOutputInfo) []models.TensorInfo {
	out := make([]models.TensorInfo, len(infos))
	for i, info := range infos {
		dtype := models.DType(info.DataType.String())
		switch info.DataType {
		case ort.TensorElementDataTypeFloat:
			dtype = models.Float32
		case ort.TensorElementDataTypeInt64:
			dtype = models.Int64
		}
		out[i] = models.TensorInfo{Name: info.Name, DType: dtype, Dims: []int64(info.Dimensions)}
	}
	return out
}
