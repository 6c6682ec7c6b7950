package onnxgraph

import (
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

func TestSignature(t *testing.T) {
	g := New("detr-like")
	x := g.Input("pixel_values", Float32, Param("batch"), Fixed(3), Param("height"), Param("width"))
	g.Input("pixel_mask", Int64, Param("batch"), Param("height"), Param("width"))
	w := g.Initializer("scale", Float32s([]int64{1}, 2))
	g.Node("Mul", []string{x, w}, []string{"scaled"})
	g.Node("ReduceMean", []string{"scaled"}, []string{"logits"})
	g.Output("logits", Float32, Param("batch"), Fixed(100), Fixed(92))
	model, err := g.Marshal(17)
	if err != nil {
		t.Fatal(err)
	}
	// As an older exporter would write it: the weight listed as an input
	// too, which a signature must not count.
	model = withExtraInput(t, model, valueInfo{name: "scale", dtype: Float32, dims: []Dim{Fixed(1)}})

	in, out, err := Signature(model)
	if err != nil {
		t.Fatal(err)
	}
	wantIn := []ValueInfo{
		{Name: "pixel_values", Type: Float32, Dims: []int64{-1, 3, -1, -1}},
		{Name: "pixel_mask", Type: Int64, Dims: []int64{-1, -1, -1}},
	}
	wantOut := []ValueInfo{{Name: "logits", Type: Float32, Dims: []int64{-1, 100, 92}}}
	if !reflect.DeepEqual(in, wantIn) || !reflect.DeepEqual(out, wantOut) {
		t.Errorf("Signature = %+v, %+v; want %+v, %+v", in, out, wantIn, wantOut)
	}
}

func TestSignatureRefusesWhatIsNotAModel(t *testing.T) {
	for name, data := range map[string][]byte{
		"html error page": []byte("<html><body>403 Forbidden</body></html>"),
		"no graph":        protowire.AppendVarint(protowire.AppendTag(nil, modelIRVersion, protowire.VarintType), 8),
		"empty":           nil,
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := Signature(data); err == nil || !strings.Contains(err.Error(), "not an ONNX model") {
				t.Errorf("err = %v, want 'not an ONNX model'", err)
			}
		})
	}
}

// withExtraInput appends an input to a serialized model's graph.
func withExtraInput(t *testing.T, model []byte, v valueInfo) []byte {
	t.Helper()
	var out []byte
	err := eachField(model, func(num protowire.Number, typ protowire.Type, field, value []byte) error {
		if num == modelGraph && typ == protowire.BytesType {
			out = appendBytes(out, modelGraph, appendBytes(append([]byte(nil), value...), graphInput, encodeValueInfo(v)))
			return nil
		}
		out = append(out, field...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
