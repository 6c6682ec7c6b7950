package onnxgraph

// ONNX AttributeProto.AttributeType values.
const (
	attrFloat  = 1
	attrInt    = 2
	attrString = 3
	attrTensor = 4
	attrFloats = 6
	attrInts   = 7
)

// Attr is a node attribute. Build one with Int, Ints, Float, Floats, String
// or TensorAttr.
type Attr struct {
	name   string
	kind   int
	i      int64
	f      float32
	s      string
	t      Tensor
	ints   []int64
	floats []float32
	err    error
}

// Int is an INT attribute, such as keepdims or axis.
func Int(name string, v int64) Attr { return Attr{name: name, kind: attrInt, i: v} }

// Ints is an INTS attribute, such as axes, kernel_shape or pads.
func Ints(name string, v ...int64) Attr {
	return Attr{name: name, kind: attrInts, ints: append([]int64(nil), v...)}
}

// Float is a FLOAT attribute, such as alpha.
func Float(name string, v float32) Attr { return Attr{name: name, kind: attrFloat, f: v} }

// Floats is a FLOATS attribute, such as Constant's value_floats.
func Floats(name string, v ...float32) Attr {
	return Attr{name: name, kind: attrFloats, floats: append([]float32(nil), v...)}
}

// String is a STRING attribute, such as Pad's mode.
func String(name, v string) Attr { return Attr{name: name, kind: attrString, s: v} }

// TensorAttr is a TENSOR attribute, such as Constant's value.
func TensorAttr(name string, t Tensor) Attr {
	return Attr{name: name, kind: attrTensor, t: t, err: t.err}
}
