package onnxgraph

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Tensor is a constant: an initializer or the value of a TENSOR attribute.
// Build one with Float32s or Int64s.
type Tensor struct {
	dtype DataType
	dims  []int64
	raw   []byte // little-endian, as ONNX raw_data requires
	err   error
}

// Float32s is a float32 tensor of the given shape (nil dims for a scalar)
// holding values in row-major order.
func Float32s(dims []int64, values ...float32) Tensor {
	t := Tensor{dtype: Float32, dims: append([]int64(nil), dims...)}
	if t.err = checkCount(dims, len(values)); t.err != nil {
		return t
	}
	t.raw = make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(t.raw[4*i:], math.Float32bits(v))
	}
	return t
}

// Int64s is an int64 tensor of the given shape (nil dims for a scalar)
// holding values in row-major order.
func Int64s(dims []int64, values ...int64) Tensor {
	t := Tensor{dtype: Int64, dims: append([]int64(nil), dims...)}
	if t.err = checkCount(dims, len(values)); t.err != nil {
		return t
	}
	t.raw = make([]byte, 8*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint64(t.raw[8*i:], uint64(v))
	}
	return t
}

// Vector is a one-dimensional int64 tensor, the form ONNX wants for axes,
// shapes and indices.
func Vector(values ...int64) Tensor {
	return Int64s([]int64{int64(len(values))}, values...)
}

func checkCount(dims []int64, n int) error {
	want := int64(1)
	for _, d := range dims {
		if d < 0 {
			return fmt.Errorf("shape %v has a negative dimension", dims)
		}
		want *= d
	}
	if want != int64(n) {
		return fmt.Errorf("shape %v holds %d elements, got %d values", dims, want, n)
	}
	return nil
}
