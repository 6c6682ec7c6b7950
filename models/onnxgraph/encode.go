package onnxgraph

import (
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers from onnx.proto. Only the fields this package writes are
// listed. onnx.proto is proto2, where repeated numbers are not packed, so
// they are written one tag per element (every parser accepts that form).
const (
	// IR version 8 (ONNX 1.10) is old enough for any current runtime to
	// load and new enough for the operator sets the synthetic models use.
	irVersion = 8
	producer  = "anonymize"

	modelIRVersion     = 1
	modelProducerName  = 2
	modelGraph         = 7
	modelOpsetImport   = 8
	modelMetadataProps = 14

	opsetDomain  = 1
	opsetVersion = 2

	graphNode        = 1
	graphName        = 2
	graphInitializer = 5
	graphInput       = 11
	graphOutput      = 12

	nodeInput     = 1
	nodeOutput    = 2
	nodeName      = 3
	nodeOpType    = 4
	nodeAttribute = 5

	attrName   = 1
	attrF      = 2
	attrI      = 3
	attrS      = 4
	attrT      = 5
	attrFloatz = 7
	attrIntz   = 8
	attrType   = 20

	tensorDims     = 1
	tensorDataType = 2
	tensorName     = 8
	tensorRawData  = 9

	valueInfoName = 1
	valueInfoType = 2

	typeTensorType = 1

	typeTensorElemType = 1
	typeTensorShape    = 2

	shapeDim = 1

	dimValue = 1
	dimParam = 2

	entryKey   = 1
	entryValue = 2
)

func appendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// appendInt writes an int64/int32/enum field; negative values take the
// ten-byte two's complement form protobuf specifies for them.
func appendInt(b []byte, num protowire.Number, v int64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(v))
}

func appendFloat(b []byte, num protowire.Number, v float32) []byte {
	b = protowire.AppendTag(b, num, protowire.Fixed32Type)
	return protowire.AppendFixed32(b, math.Float32bits(v))
}

func (g *Graph) encodeModel(opset int) []byte {
	var b []byte
	b = appendInt(b, modelIRVersion, irVersion)
	b = appendString(b, modelProducerName, producer)
	b = appendBytes(b, modelGraph, g.encodeGraph())

	var op []byte
	op = appendString(op, opsetDomain, "")
	op = appendInt(op, opsetVersion, int64(opset))
	b = appendBytes(b, modelOpsetImport, op)

	for _, m := range g.metadata {
		var e []byte
		e = appendString(e, entryKey, m.key)
		e = appendString(e, entryValue, m.value)
		b = appendBytes(b, modelMetadataProps, e)
	}
	return b
}

func (g *Graph) encodeGraph() []byte {
	var b []byte
	for _, n := range g.nodes {
		b = appendBytes(b, graphNode, encodeNode(n))
	}
	b = appendString(b, graphName, g.name)
	for _, in := range g.initializers {
		b = appendBytes(b, graphInitializer, encodeTensor(in.name, in.tensor))
	}
	for _, v := range g.inputs {
		b = appendBytes(b, graphInput, encodeValueInfo(v))
	}
	for _, v := range g.outputs {
		b = appendBytes(b, graphOutput, encodeValueInfo(v))
	}
	return b
}

func encodeNode(n node) []byte {
	var b []byte
	for _, in := range n.inputs {
		b = appendString(b, nodeInput, in)
	}
	for _, out := range n.outputs {
		b = appendString(b, nodeOutput, out)
	}
	b = appendString(b, nodeName, n.name)
	b = appendString(b, nodeOpType, n.op)
	for _, a := range n.attrs {
		b = appendBytes(b, nodeAttribute, encodeAttr(a))
	}
	return b
}

func encodeAttr(a Attr) []byte {
	var b []byte
	b = appendString(b, attrName, a.name)
	switch a.kind {
	case attrFloat:
		b = appendFloat(b, attrF, a.f)
	case attrInt:
		b = appendInt(b, attrI, a.i)
	case attrString:
		b = appendString(b, attrS, a.s)
	case attrTensor:
		b = appendBytes(b, attrT, encodeTensor("", a.t))
	case attrFloats:
		for _, f := range a.floats {
			b = appendFloat(b, attrFloatz, f)
		}
	case attrInts:
		for _, i := range a.ints {
			b = appendInt(b, attrIntz, i)
		}
	}
	return appendInt(b, attrType, int64(a.kind))
}

func encodeTensor(name string, t Tensor) []byte {
	var b []byte
	for _, d := range t.dims {
		b = appendInt(b, tensorDims, d)
	}
	b = appendInt(b, tensorDataType, int64(t.dtype))
	if name != "" {
		b = appendString(b, tensorName, name)
	}
	// Always raw_data, even for an empty tensor, so every constant takes the
	// same path through a loader.
	return appendBytes(b, tensorRawData, t.raw)
}

func encodeValueInfo(v valueInfo) []byte {
	var shape []byte
	for _, d := range v.dims {
		var dim []byte
		if d.param != "" {
			dim = appendString(dim, dimParam, d.param)
		} else {
			dim = appendInt(dim, dimValue, d.value)
		}
		shape = appendBytes(shape, shapeDim, dim)
	}
	var tensor []byte
	tensor = appendInt(tensor, typeTensorElemType, int64(v.dtype))
	tensor = appendBytes(tensor, typeTensorShape, shape)

	var typ []byte
	typ = appendBytes(typ, typeTensorType, tensor)

	var b []byte
	b = appendString(b, valueInfoName, v.name)
	return appendBytes(b, valueInfoType, typ)
}
