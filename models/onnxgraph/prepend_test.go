package onnxgraph_test

import (
	"strings"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/anonymize-dev/anonymize/models/onnxgraph"
)

// scaleModel is a model with two inputs: y = x * 2 + bias.
func scaleModel(t *testing.T, opset int) []byte {
	t.Helper()
	g := onnxgraph.New("scale")
	n := onnxgraph.Param("n")
	x := g.Input("x", onnxgraph.Float32, n, onnxgraph.Fixed(3))
	bias := g.Input("bias", onnxgraph.Float32, onnxgraph.Fixed(3))
	two := g.Initializer("two", onnxgraph.Float32s(nil, 2))
	g.Node("Add", []string{g.Op("Mul", []string{x, two}), bias}, []string{"y"})
	g.Output("y", onnxgraph.Float32, n, onnxgraph.Fixed(3))
	b, err := g.Marshal(opset)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// castFront computes the model's x from uint8 pixels: x = float(raw) - 1.
func castFront() *onnxgraph.Graph {
	g := onnxgraph.New("front")
	n := onnxgraph.Param("n")
	raw := g.Input("raw", onnxgraph.Uint8, n, onnxgraph.Fixed(3))
	one := g.Const(onnxgraph.Float32s(nil, 1))
	g.Node("Sub", []string{g.Op("Cast", []string{raw}, onnxgraph.Int("to", int64(onnxgraph.Float32))), one}, []string{"x"})
	g.Output("x", onnxgraph.Float32, n, onnxgraph.Fixed(3))
	return g
}

// TestPrependComputesAnInput: the combined model takes the front's input
// instead of the one it computes, keeps the model's other input, and
// computes what both graphs in turn compute.
func TestPrependComputesAnInput(t *testing.T) {
	model, err := castFront().Prepend(scaleModel(t, 13), 11)
	if err != nil {
		t.Fatal(err)
	}
	initORT(t)
	ins, outs, err := ort.GetInputOutputInfoWithONNXData(model)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, in := range ins {
		names = append(names, in.Name+":"+in.DataType.String())
	}
	if got := strings.Join(names, " "); got != "bias:ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT raw:ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8" {
		t.Errorf("inputs %s, want bias (float) and raw (uint8)", got)
	}
	if len(outs) != 1 || outs[0].Name != "y" {
		t.Errorf("outputs %v, want y", outs)
	}

	raw, err := ort.NewTensor(ort.NewShape(2, 3), []uint8{1, 2, 3, 250, 0, 7})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Destroy()
	got := runModel(t, model, []feed{{"raw", raw}, floatInput(t, "bias", []int64{3}, 0.5, 0, -1)}, "y")
	_, y := tensorData[float32](t, got[0])
	want := []float32{0.5, 2, 3, 498.5, -2, 11}
	for i := range want {
		if y[i] != want[i] {
			t.Fatalf("y = %v, want %v", y, want)
		}
	}
}

func TestPrependRefuses(t *testing.T) {
	clash := castFront()
	clash.Initializer("two", onnxgraph.Float32s(nil, 3)) // the model's weight's name
	noInput := onnxgraph.New("front")
	in := noInput.Input("raw", onnxgraph.Float32, onnxgraph.Fixed(3))
	noInput.Node("Identity", []string{in}, []string{"z"})
	noInput.Output("z", onnxgraph.Float32, onnxgraph.Fixed(3))
	for _, tt := range []struct {
		name  string
		front *onnxgraph.Graph
		model []byte
		want  string
	}{
		{"old operator set", castFront(), scaleModel(t, 10), "imports ONNX operator set 10; putting \"front\" in front of it needs 11"},
		{"name taken", clash, scaleModel(t, 13), `"two", which "front" defines, is already a weight in the model`},
		{"no such input", noInput, scaleModel(t, 13), `the model has no input "z" to compute`},
		{"not a model", castFront(), []byte{0xff, 0xff}, "read model"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.front.Prepend(tt.model, 11)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}
