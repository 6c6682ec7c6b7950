package onnxgraph

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// ValueInfo is one graph input or output as a serialized model declares it.
type ValueInfo struct {
	Name string
	Type DataType
	Dims []int64 // -1 where the size is symbolic or not given
}

// Signature reads a serialized model's graph inputs and outputs without
// ONNX Runtime, so a downloaded file can be checked against its contract
// before it is installed. Initializers that older exporters also list as
// inputs (weights) are left out, as ONNX Runtime leaves them out.
func Signature(model []byte) (inputs, outputs []ValueInfo, err error) {
	var graph []byte
	err = eachField(model, func(num protowire.Number, typ protowire.Type, _, value []byte) error {
		if num == modelGraph && typ == protowire.BytesType {
			graph = value
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("not an ONNX model: %w", err)
	}
	if graph == nil {
		return nil, nil, errors.New("not an ONNX model: no graph")
	}
	weights := map[string]bool{}
	err = eachField(graph, func(num protowire.Number, typ protowire.Type, _, value []byte) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case graphInitializer:
			name, err := stringField(value, tensorName)
			weights[name] = true
			return err
		case graphInput, graphOutput:
			v, err := readValueInfo(value)
			if err != nil {
				return err
			}
			if num == graphInput {
				inputs = append(inputs, v)
			} else {
				outputs = append(outputs, v)
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("not an ONNX model: graph: %w", err)
	}
	kept := inputs[:0]
	for _, in := range inputs {
		if !weights[in.Name] {
			kept = append(kept, in)
		}
	}
	return kept, outputs, nil
}

// readValueInfo reads a ValueInfoProto holding a tensor type.
func readValueInfo(msg []byte) (ValueInfo, error) {
	var v ValueInfo
	var typ []byte
	err := eachField(msg, func(num protowire.Number, wt protowire.Type, _, value []byte) error {
		switch {
		case num == valueInfoName && wt == protowire.BytesType:
			v.Name = string(value)
		case num == valueInfoType && wt == protowire.BytesType:
			typ = value
		}
		return nil
	})
	if err != nil {
		return v, err
	}
	var tensor []byte
	if err := eachField(typ, func(num protowire.Number, wt protowire.Type, _, value []byte) error {
		if num == typeTensorType && wt == protowire.BytesType {
			tensor = value
		}
		return nil
	}); err != nil {
		return v, err
	}
	if tensor == nil {
		return v, fmt.Errorf("%q is not a tensor", v.Name)
	}
	var shape []byte
	err = eachField(tensor, func(num protowire.Number, wt protowire.Type, field, value []byte) error {
		switch {
		case num == typeTensorElemType && wt == protowire.VarintType:
			v.Type = DataType(varint(field))
		case num == typeTensorShape && wt == protowire.BytesType:
			shape = value
		}
		return nil
	})
	if err != nil {
		return v, err
	}
	err = eachField(shape, func(num protowire.Number, wt protowire.Type, _, dim []byte) error {
		if num != shapeDim || wt != protowire.BytesType {
			return nil
		}
		size := int64(-1)
		err := eachField(dim, func(num protowire.Number, wt protowire.Type, field, _ []byte) error {
			if num == dimValue && wt == protowire.VarintType {
				size = int64(varint(field))
			}
			return nil
		})
		v.Dims = append(v.Dims, size)
		return err
	})
	return v, err
}

// varint decodes a whole varint field (tag included).
func varint(field []byte) uint64 {
	_, _, n := protowire.ConsumeTag(field)
	v, _ := protowire.ConsumeVarint(field[n:])
	return v
}
