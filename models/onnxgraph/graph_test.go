package onnxgraph_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/anonymize-dev/anonymize/models/onnxgraph"
)

const opset = 13

func marshal(t *testing.T, g *onnxgraph.Graph) []byte {
	t.Helper()
	b, err := g.Marshal(opset)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return b
}

func checkFloats(t *testing.T, v ort.Value, wantShape []int64, want []float32) {
	t.Helper()
	shape, got := tensorData[float32](t, v)
	if !slices.Equal(shape, wantShape) {
		t.Errorf("shape = %v, want %v", shape, wantShape)
	}
	if !slices.Equal(got, want) {
		t.Errorf("values = %v, want %v", got, want)
	}
}

func addModel(t *testing.T) []byte {
	t.Helper()
	g := onnxgraph.New("add")
	a := g.Input("a", onnxgraph.Float32, onnxgraph.Param("n"), onnxgraph.Fixed(3))
	b := g.Input("b", onnxgraph.Float32, onnxgraph.Param("n"), onnxgraph.Fixed(3))
	g.Node("Add", []string{a, b}, []string{"sum"})
	g.Output("sum", onnxgraph.Float32, onnxgraph.Param("n"), onnxgraph.Fixed(3))
	return marshal(t, g)
}

func TestAddWithSymbolicBatch(t *testing.T) {
	model := addModel(t)
	for _, n := range []int64{1, 2, 5} {
		a := make([]float32, 3*n)
		b := make([]float32, 3*n)
		want := make([]float32, 3*n)
		for i := range a {
			a[i], b[i] = float32(i), float32(10*i)+0.5
			want[i] = a[i] + b[i]
		}
		out := runModel(t, model, []feed{
			floatInput(t, "a", []int64{n, 3}, a...),
			floatInput(t, "b", []int64{n, 3}, b...),
		}, "sum")
		checkFloats(t, out[0], []int64{n, 3}, want)
	}
}

func TestReduceMaxAttributes(t *testing.T) {
	x := []float32{
		1, 7, 3, 2,
		-5, -1, -9, -2,
		4, 0, 8, 6,

		0, 0, 0, 1,
		9, 3, 3, 9,
		-1, -1, -1, -1,
	}
	tests := []struct {
		name      string
		axes      []int64
		keepdims  int64
		wantShape []int64
		want      []float32
	}{
		{"last axis", []int64{2}, 0, []int64{2, 3}, []float32{7, -1, 8, 1, 9, -1}},
		{"negative axis keeps dims", []int64{-1}, 1, []int64{2, 3, 1}, []float32{7, -1, 8, 1, 9, -1}},
		{"two axes", []int64{1, 2}, 0, []int64{2}, []float32{8, 9}},
		{"middle axis", []int64{1}, 0, []int64{2, 4}, []float32{4, 7, 8, 6, 9, 3, 3, 9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := onnxgraph.New("reducemax")
			in := g.Input("x", onnxgraph.Float32, onnxgraph.Fixed(2), onnxgraph.Fixed(3), onnxgraph.Fixed(4))
			g.Node("ReduceMax", []string{in}, []string{"y"},
				onnxgraph.Ints("axes", tt.axes...), onnxgraph.Int("keepdims", tt.keepdims))
			g.Output("y", onnxgraph.Float32)
			out := runModel(t, marshal(t, g), []feed{floatInput(t, "x", []int64{2, 3, 4}, x...)}, "y")
			checkFloats(t, out[0], tt.wantShape, tt.want)
		})
	}
}

func TestGatherFromInitializer(t *testing.T) {
	g := onnxgraph.New("gather")
	table := g.Initializer("table", onnxgraph.Float32s([]int64{4, 2},
		0.5, 1.5,
		2.5, 3.5,
		4.5, 5.5,
		6.5, 7.5))
	idx := g.Input("idx", onnxgraph.Int64, onnxgraph.Param("k"))
	g.Node("Gather", []string{table, idx}, []string{"rows"}, onnxgraph.Int("axis", 0))
	g.Output("rows", onnxgraph.Float32, onnxgraph.Param("k"), onnxgraph.Fixed(2))

	out := runModel(t, marshal(t, g), []feed{int64Input(t, "idx", []int64{3}, 3, 0, 3)}, "rows")
	checkFloats(t, out[0], []int64{3, 2}, []float32{6.5, 7.5, 0.5, 1.5, 6.5, 7.5})
}

func TestInt64Constants(t *testing.T) {
	// Exercises int64 raw data with negative and large values, and Op's
	// generated names for intermediate values.
	g := onnxgraph.New("int64")
	x := g.Input("x", onnxgraph.Int64, onnxgraph.Fixed(3))
	c := g.Const(onnxgraph.Int64s([]int64{3}, -7, 1<<40, 0))
	sum := g.Op("Add", []string{x, c})
	g.Node("Identity", []string{sum}, []string{"y"})
	g.Output("y", onnxgraph.Int64, onnxgraph.Fixed(3))

	out := runModel(t, marshal(t, g), []feed{int64Input(t, "x", []int64{3}, 1, 2, -3)}, "y")
	shape, got := tensorData[int64](t, out[0])
	if want := []int64{-6, 1<<40 + 2, -3}; !slices.Equal(shape, []int64{3}) || !slices.Equal(got, want) {
		t.Errorf("y = %v %v, want [3] %v", shape, got, want)
	}
}

// TestAttributeKinds runs one operator per attribute type whose output
// depends on the attribute's value, so a wrongly encoded attribute shows up
// as a wrong number (or a load error) rather than passing silently.
func TestAttributeKinds(t *testing.T) {
	tests := []struct {
		name  string
		build func(g *onnxgraph.Graph, x string) string
		x     []float32
		want  []float32
	}{
		{
			name: "float",
			build: func(g *onnxgraph.Graph, x string) string {
				return g.Op("LeakyRelu", []string{x}, onnxgraph.Float("alpha", 0.25))
			},
			x:    []float32{-4, 2, -1},
			want: []float32{-1, 2, -0.25},
		},
		{
			name: "floats",
			build: func(g *onnxgraph.Graph, x string) string {
				c := g.Op("Constant", nil, onnxgraph.Floats("value_floats", 1.5, -2, 100))
				return g.Op("Add", []string{x, c})
			},
			x:    []float32{1, 2, 3},
			want: []float32{2.5, 0, 103},
		},
		{
			name: "string",
			build: func(g *onnxgraph.Graph, x string) string {
				pads := g.Const(onnxgraph.Vector(2, 1))
				padded := g.Op("Pad", []string{x, pads}, onnxgraph.String("mode", "reflect"))
				// Slice back to three elements so the output keeps x's shape.
				start, end := g.Const(onnxgraph.Vector(0)), g.Const(onnxgraph.Vector(3))
				return g.Op("Slice", []string{padded, start, end})
			},
			x:    []float32{1, 2, 3},
			want: []float32{3, 2, 1},
		},
		{
			name: "tensor",
			build: func(g *onnxgraph.Graph, x string) string {
				c := g.Op("Constant", nil, onnxgraph.TensorAttr("value", onnxgraph.Float32s([]int64{3}, 10, 20, 30)))
				return g.Op("Mul", []string{x, c})
			},
			x:    []float32{1, -2, 0.5},
			want: []float32{10, -40, 15},
		},
		{
			name: "int and ints",
			build: func(g *onnxgraph.Graph, x string) string {
				shape := g.Const(onnxgraph.Vector(1, 3))
				row := g.Op("Reshape", []string{x, shape})
				tiled := g.Op("Tile", []string{row, g.Const(onnxgraph.Vector(2, 1))})
				// Transposed, ArgMax over axis 1 of [[a,a],[b,b],[c,c]] picks
				// the last index only when select_last_index is 1.
				tr := g.Op("Transpose", []string{tiled}, onnxgraph.Ints("perm", 1, 0))
				last := g.Op("ArgMax", []string{tr}, onnxgraph.Int("axis", 1),
					onnxgraph.Int("keepdims", 0), onnxgraph.Int("select_last_index", 1))
				return g.Op("Cast", []string{last}, onnxgraph.Int("to", int64(onnxgraph.Float32)))
			},
			x:    []float32{5, 6, 7},
			want: []float32{1, 1, 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := onnxgraph.New(tt.name)
			x := g.Input("x", onnxgraph.Float32, onnxgraph.Fixed(3))
			g.Node("Identity", []string{tt.build(g, x)}, []string{"y"})
			g.Output("y", onnxgraph.Float32, onnxgraph.Fixed(3))
			out := runModel(t, marshal(t, g), []feed{floatInput(t, "x", []int64{3}, tt.x...)}, "y")
			checkFloats(t, out[0], []int64{3}, tt.want)
		})
	}
}

func TestDeclaredInputsAndOutputs(t *testing.T) {
	initORT(t)
	g := onnxgraph.New("declared")
	img := g.Input("image", onnxgraph.Float32, onnxgraph.Param("batch"), onnxgraph.Fixed(3), onnxgraph.Param("h"), onnxgraph.Param("w"))
	g.Input("mask", onnxgraph.Int64, onnxgraph.Param("batch"), onnxgraph.Param("h"), onnxgraph.Param("w"))
	g.Node("ReduceMax", []string{img}, []string{"peak"}, onnxgraph.Ints("axes", 1, 2, 3), onnxgraph.Int("keepdims", 0))
	g.Output("peak", onnxgraph.Float32, onnxgraph.Param("batch"))

	ins, outs, err := ort.GetInputOutputInfoWithONNXData(marshal(t, g))
	if err != nil {
		t.Fatalf("read declared tensors: %v", err)
	}
	type decl struct {
		name  string
		dtype ort.TensorElementDataType
		dims  []int64
	}
	check := func(kind string, got []ort.InputOutputInfo, want []decl) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: got %d tensors, want %d", kind, len(got), len(want))
		}
		for i, w := range want {
			g := got[i]
			if g.Name != w.name || g.DataType != w.dtype || !slices.Equal([]int64(g.Dimensions), w.dims) {
				t.Errorf("%s %d = %s %v %v, want %s %v %v", kind, i, g.Name, g.DataType, g.Dimensions, w.name, w.dtype, w.dims)
			}
		}
	}
	check("input", ins, []decl{
		{"image", ort.TensorElementDataTypeFloat, []int64{-1, 3, -1, -1}},
		{"mask", ort.TensorElementDataTypeInt64, []int64{-1, -1, -1}},
	})
	check("output", outs, []decl{{"peak", ort.TensorElementDataTypeFloat, []int64{-1}}})
}

func TestMetadata(t *testing.T) {
	initORT(t)
	g := onnxgraph.New("with-metadata")
	x := g.Input("x", onnxgraph.Float32, onnxgraph.Fixed(1))
	g.Node("Identity", []string{x}, []string{"y"})
	g.Output("y", onnxgraph.Float32, onnxgraph.Fixed(1))
	g.Metadata("anonymize.test", "yes")
	g.Metadata("description", "a model with two metadata entries")

	md, err := ort.GetModelMetadataWithONNXData(marshal(t, g))
	if err != nil {
		t.Fatalf("read metadata: %v", err)
	}
	defer md.Destroy()
	for key, want := range map[string]string{
		"anonymize.test": "yes",
		"description":    "a model with two metadata entries",
	} {
		got, ok, err := md.LookupCustomMetadataMap(key)
		if err != nil || !ok || got != want {
			t.Errorf("metadata %q = %q (present %v, err %v), want %q", key, got, ok, err, want)
		}
	}
	if _, ok, err := md.LookupCustomMetadataMap("absent"); err != nil || ok {
		t.Errorf("metadata %q present=%v err=%v, want absent", "absent", ok, err)
	}
	if p, err := md.GetProducerName(); err != nil || p != "anonymize" {
		t.Errorf("producer = %q (%v), want anonymize", p, err)
	}
	if n, err := md.GetGraphName(); err != nil || n != "with-metadata" {
		t.Errorf("graph name = %q (%v), want with-metadata", n, err)
	}
}

func TestMarshalIsDeterministic(t *testing.T) {
	a, b := addModel(t), addModel(t)
	if !bytes.Equal(a, b) {
		t.Error("two identical graphs encoded to different bytes")
	}
}

func TestMarshalReportsMistakes(t *testing.T) {
	tests := []struct {
		name    string
		build   func(g *onnxgraph.Graph)
		opset   int
		wantErr string
	}{
		{
			name: "use before definition",
			build: func(g *onnxgraph.Graph) {
				g.Node("Relu", []string{"later"}, []string{"y"})
				g.Input("later", onnxgraph.Float32)
				g.Output("y", onnxgraph.Float32)
			},
			wantErr: `uses "later" before it is defined`,
		},
		{
			name: "value defined twice",
			build: func(g *onnxgraph.Graph) {
				x := g.Input("x", onnxgraph.Float32)
				g.Node("Relu", []string{x}, []string{"x"})
				g.Output("x", onnxgraph.Float32)
			},
			wantErr: `"x": the name is already defined`,
		},
		{
			name: "output never produced",
			build: func(g *onnxgraph.Graph) {
				g.Input("x", onnxgraph.Float32)
				g.Output("y", onnxgraph.Float32)
			},
			wantErr: `output "y" is never produced`,
		},
		{
			name:    "no outputs",
			build:   func(g *onnxgraph.Graph) { g.Input("x", onnxgraph.Float32) },
			wantErr: "no outputs declared",
		},
		{
			name: "tensor with wrong element count",
			build: func(g *onnxgraph.Graph) {
				g.Initializer("c", onnxgraph.Float32s([]int64{2, 2}, 1, 2, 3))
				g.Output("c", onnxgraph.Float32)
			},
			wantErr: "holds 4 elements, got 3 values",
		},
		{
			name: "bad tensor attribute",
			build: func(g *onnxgraph.Graph) {
				g.Node("Constant", nil, []string{"c"}, onnxgraph.TensorAttr("value", onnxgraph.Int64s([]int64{-1})))
				g.Output("c", onnxgraph.Int64)
			},
			wantErr: "negative dimension",
		},
		{
			name: "metadata key twice",
			build: func(g *onnxgraph.Graph) {
				x := g.Input("x", onnxgraph.Float32)
				g.Output(x, onnxgraph.Float32)
				g.Metadata("k", "1")
				g.Metadata("k", "2")
			},
			wantErr: `metadata key "k" is set twice`,
		},
		{
			name: "invalid opset",
			build: func(g *onnxgraph.Graph) {
				x := g.Input("x", onnxgraph.Float32)
				g.Output(x, onnxgraph.Float32)
			},
			opset:   -1,
			wantErr: "not a valid operator set",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := onnxgraph.New("broken")
			tt.build(g)
			op := opset
			if tt.opset != 0 {
				op = tt.opset
			}
			_, err := g.Marshal(op)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Marshal error = %v, want one containing %q", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), `"broken"`) {
				t.Errorf("error %q does not name the graph", err)
			}
		})
	}
}
