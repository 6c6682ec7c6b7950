package onnxgraph

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

// Prepend puts g in front of an existing model (a serialized ModelProto)
// and returns the combined model: every input of the model named like one
// of g's outputs is removed, and g's nodes compute it instead from g's
// inputs, which become the model's. The model's other inputs stay.
//
// g's nodes must be valid in the model's default operator set, which must
// be at least minOpset. Names g defines may not already be defined in the
// model. Every other field of the model, its weights included, is copied
// byte for byte.
func (g *Graph) Prepend(model []byte, minOpset int) ([]byte, error) {
	if g.err != nil {
		return nil, fmt.Errorf("onnx graph %q: %w", g.name, g.err)
	}
	if len(g.outputs) == 0 {
		return nil, fmt.Errorf("onnx graph %q: no outputs declared", g.name)
	}
	replaced := map[string]bool{}
	for _, o := range g.outputs {
		if !g.taken[o.name] {
			return nil, fmt.Errorf("onnx graph %q: output %q is never produced", g.name, o.name)
		}
		replaced[o.name] = true
	}

	var out, graph []byte
	opset := -1
	err := eachField(model, func(num protowire.Number, typ protowire.Type, field, value []byte) error {
		switch num {
		case modelGraph:
			if typ != protowire.BytesType || graph != nil {
				return errors.New("malformed graph field")
			}
			graph = value
			return nil
		case modelOpsetImport:
			if typ != protowire.BytesType {
				return errors.New("malformed opset_import field")
			}
			domain, version, err := readOpset(value)
			if err != nil {
				return err
			}
			if domain == "" || domain == "ai.onnx" {
				opset = int(version)
			}
		}
		out = append(out, field...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read model: %w", err)
	}
	if graph == nil {
		return nil, errors.New("read model: it has no graph")
	}
	if opset < minOpset {
		return nil, fmt.Errorf("the model imports ONNX operator set %d; putting %q in front of it needs %d or later", opset, g.name, minOpset)
	}
	newGraph, err := g.prependGraph(graph, replaced)
	if err != nil {
		return nil, err
	}
	return appendBytes(out, modelGraph, newGraph), nil
}

// prependGraph rewrites a GraphProto: g's nodes first (ONNX wants nodes in
// topological order, and they depend on nothing of the model's), then the
// model's fields without the replaced inputs, then g's constants and
// inputs.
func (g *Graph) prependGraph(graph []byte, replaced map[string]bool) ([]byte, error) {
	var b []byte
	for _, n := range g.nodes {
		b = appendBytes(b, graphNode, encodeNode(n))
	}
	found := map[string]bool{}
	defined := func(name, what string) error {
		if g.taken[name] && !replaced[name] {
			return fmt.Errorf("%q, which %q defines, is already %s in the model", name, g.name, what)
		}
		return nil
	}
	err := eachField(graph, func(num protowire.Number, typ protowire.Type, field, value []byte) error {
		switch num {
		case graphInput, graphInitializer:
			nameField, what := protowire.Number(valueInfoName), "an input"
			if num == graphInitializer {
				nameField, what = tensorName, "a weight"
			}
			name, err := stringField(value, nameField)
			if err != nil {
				return err
			}
			if num == graphInput && replaced[name] {
				found[name] = true
				return nil // dropped: g computes it now
			}
			if err := defined(name, what); err != nil {
				return err
			}
		case graphNode:
			outs, err := stringFields(value, nodeOutput)
			if err != nil {
				return err
			}
			for _, o := range outs {
				if replaced[o] {
					return fmt.Errorf("%q is both an input of the model and computed in it", o)
				}
				if err := defined(o, "computed"); err != nil {
					return err
				}
			}
		}
		b = append(b, field...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read model graph: %w", err)
	}
	for name := range replaced {
		if !found[name] {
			return nil, fmt.Errorf("the model has no input %q to compute (%q computes %v)", name, g.name, slices.Sorted(maps.Keys(replaced)))
		}
	}
	for _, in := range g.initializers {
		b = appendBytes(b, graphInitializer, encodeTensor(in.name, in.tensor))
	}
	for _, v := range g.inputs {
		b = appendBytes(b, graphInput, encodeValueInfo(v))
	}
	return b, nil
}

// eachField calls fn with every field of a message: its number and wire
// type, the whole encoded field and, for length-delimited fields, its
// contents.
func eachField(msg []byte, fn func(num protowire.Number, typ protowire.Type, field, value []byte) error) error {
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return protowire.ParseError(n)
		}
		m := protowire.ConsumeFieldValue(num, typ, msg[n:])
		if m < 0 {
			return protowire.ParseError(m)
		}
		var value []byte
		if typ == protowire.BytesType {
			v, k := protowire.ConsumeBytes(msg[n:])
			if k < 0 {
				return protowire.ParseError(k)
			}
			value = v
		}
		if err := fn(num, typ, msg[:n+m], value); err != nil {
			return err
		}
		msg = msg[n+m:]
	}
	return nil
}

// stringFields returns every value of a string field of a message.
func stringFields(msg []byte, want protowire.Number) ([]string, error) {
	var out []string
	err := eachField(msg, func(num protowire.Number, typ protowire.Type, _, value []byte) error {
		if num == want && typ == protowire.BytesType {
			out = append(out, string(value))
		}
		return nil
	})
	return out, err
}

// stringField returns the last value of a string field ("" when absent),
// as protobuf reads a repeated scalar into a singular one.
func stringField(msg []byte, want protowire.Number) (string, error) {
	all, err := stringFields(msg, want)
	if err != nil || len(all) == 0 {
		return "", err
	}
	return all[len(all)-1], nil
}

// readOpset reads an OperatorSetIdProto.
func readOpset(msg []byte) (domain string, version int64, err error) {
	err = eachField(msg, func(num protowire.Number, typ protowire.Type, field, value []byte) error {
		switch {
		case num == opsetDomain && typ == protowire.BytesType:
			domain = string(value)
		case num == opsetVersion && typ == protowire.VarintType:
			_, _, n := protowire.ConsumeTag(field)
			v, _ := protowire.ConsumeVarint(field[n:])
			version = int64(v)
		}
		return nil
	})
	return domain, version, err
}
