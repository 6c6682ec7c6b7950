package onnxgraph

import (
	"fmt"
	"strings"
)

// DataType is an ONNX TensorProto element type.
type DataType int32

// The element types this package can declare. Only Float32 and Int64 tensors
// can be written as constants; Bool exists for declaring inputs and outputs,
// Float16 for reading them (Signature) from half-precision exports.
const (
	Float32 DataType = 1
	Uint8   DataType = 2
	Int64   DataType = 7
	Bool    DataType = 9
	Float16 DataType = 10
	Float64 DataType = 11
)

func (t DataType) String() string {
	switch t {
	case Float32:
		return "float32"
	case Uint8:
		return "uint8"
	case Int64:
		return "int64"
	case Bool:
		return "bool"
	case Float16:
		return "float16"
	case Float64:
		return "float64"
	}
	return fmt.Sprintf("DataType(%d)", int32(t))
}

// Dim is one dimension of a declared input or output: a fixed size, or a
// symbolic name the runtime resolves from the tensors it is fed.
type Dim struct {
	value int64
	param string
}

// Fixed is a dimension of exactly n elements.
func Fixed(n int64) Dim { return Dim{value: n} }

// Param is a symbolic dimension (ONNX dim_param). Dimensions sharing a name
// must have the same size at run time.
func Param(name string) Dim { return Dim{param: name} }

func (d Dim) String() string {
	if d.param != "" {
		return d.param
	}
	return fmt.Sprint(d.value)
}

type valueInfo struct {
	name  string
	dtype DataType
	dims  []Dim
}

type initializer struct {
	name   string
	tensor Tensor
}

type node struct {
	name    string
	op      string
	inputs  []string
	outputs []string
	attrs   []Attr
}

type metadata struct{ key, value string }

// Graph is a model under construction. The zero value is not usable; call New.
type Graph struct {
	name         string
	inputs       []valueInfo
	outputs      []valueInfo
	initializers []initializer
	nodes        []node
	metadata     []metadata

	// taken holds every value name defined so far, so generated names never
	// collide with names the caller chose.
	taken map[string]bool
	seq   int
	err   error
	// prefix starts every generated name (see Scoped).
	prefix string
}

// New starts an empty graph with the given name.
func New(name string) *Graph {
	return &Graph{name: name, taken: make(map[string]bool)}
}

// fail remembers the first error; later ones are usually consequences of it.
func (g *Graph) fail(format string, args ...any) {
	if g.err == nil {
		g.err = fmt.Errorf(format, args...)
	}
}

// define marks a value name as defined, reporting a second definition.
func (g *Graph) define(name, what string) {
	if name == "" {
		g.fail("%s with an empty name", what)
		return
	}
	if g.taken[name] {
		g.fail("%s %q: the name is already defined", what, name)
		return
	}
	g.taken[name] = true
}

// Scoped starts every name the graph generates (for constants, op
// outputs and nodes) with prefix, so that a graph put in front of another
// model (Prepend) does not take the model's names. It returns g.
func (g *Graph) Scoped(prefix string) *Graph {
	g.prefix = prefix
	return g
}

// fresh returns an unused value name derived from prefix.
func (g *Graph) fresh(prefix string) string {
	for {
		g.seq++
		name := fmt.Sprintf("%s%s_%d", g.prefix, strings.ToLower(prefix), g.seq)
		if !g.taken[name] {
			return name
		}
	}
}

// Input declares a graph input and returns its name, for use as a node input.
func (g *Graph) Input(name string, dtype DataType, dims ...Dim) string {
	g.define(name, "input")
	g.inputs = append(g.inputs, valueInfo{name: name, dtype: dtype, dims: dims})
	return name
}

// Output declares that the value called name is a graph output. The value
// must be produced by a node or be an input or initializer by the time
// Marshal is called.
func (g *Graph) Output(name string, dtype DataType, dims ...Dim) {
	g.outputs = append(g.outputs, valueInfo{name: name, dtype: dtype, dims: dims})
}

// Initializer adds a named constant and returns its name.
func (g *Graph) Initializer(name string, t Tensor) string {
	if t.err != nil {
		g.fail("initializer %q: %w", name, t.err)
	}
	g.define(name, "initializer")
	g.initializers = append(g.initializers, initializer{name: name, tensor: t})
	return name
}

// Const adds a constant under a generated name and returns that name.
func (g *Graph) Const(t Tensor) string {
	return g.Initializer(g.fresh("const"), t)
}

// Node adds an operator of the default ONNX domain. An empty input name
// stands for an omitted optional input, as in ONNX itself.
func (g *Graph) Node(op string, inputs, outputs []string, attrs ...Attr) {
	name := fmt.Sprintf("%s%s_%d", g.prefix, op, len(g.nodes))
	for _, a := range attrs {
		if a.err != nil {
			g.fail("node %s attribute %q: %w", name, a.name, a.err)
		}
	}
	if len(outputs) == 0 {
		g.fail("node %s has no outputs", name)
	}
	for _, in := range inputs {
		if in != "" && !g.taken[in] {
			g.fail("node %s uses %q before it is defined", name, in)
		}
	}
	for _, out := range outputs {
		g.define(out, "output of node "+name)
	}
	g.nodes = append(g.nodes, node{
		name:    name,
		op:      op,
		inputs:  append([]string(nil), inputs...),
		outputs: append([]string(nil), outputs...),
		attrs:   append([]Attr(nil), attrs...),
	})
}

// Op adds a single-output operator and returns the generated name of its
// output, so that expressions nest the way the computation reads.
func (g *Graph) Op(op string, inputs []string, attrs ...Attr) string {
	out := g.fresh(op)
	g.Node(op, inputs, []string{out}, attrs...)
	return out
}

// Metadata adds a key/value pair to the model's metadata_props, which ONNX
// Runtime exposes as custom metadata.
func (g *Graph) Metadata(key, value string) {
	for _, m := range g.metadata {
		if m.key == key {
			g.fail("metadata key %q is set twice", key)
			return
		}
	}
	g.metadata = append(g.metadata, metadata{key: key, value: value})
}

// Marshal checks the graph and encodes it as an ONNX ModelProto importing
// the default operator set at the given version. The same graph always
// encodes to the same bytes.
func (g *Graph) Marshal(opset int) ([]byte, error) {
	if g.err != nil {
		return nil, fmt.Errorf("onnx graph %q: %w", g.name, g.err)
	}
	if opset < 1 {
		return nil, fmt.Errorf("onnx graph %q: opset %d is not a valid operator set version", g.name, opset)
	}
	if len(g.outputs) == 0 {
		return nil, fmt.Errorf("onnx graph %q: no outputs declared", g.name)
	}
	seen := make(map[string]bool)
	for _, o := range g.outputs {
		if !g.taken[o.name] {
			return nil, fmt.Errorf("onnx graph %q: output %q is never produced", g.name, o.name)
		}
		if seen[o.name] {
			return nil, fmt.Errorf("onnx graph %q: output %q is declared twice", g.name, o.name)
		}
		seen[o.name] = true
	}
	return g.encodeModel(opset), nil
}
