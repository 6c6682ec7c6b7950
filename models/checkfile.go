package models

import (
	"fmt"
	"os"

	"github.com/anonymize-dev/anonymize/models/onnxgraph"
)

// CheckFile checks what a model file declares against the contract by
// reading the file itself, without ONNX Runtime: `models pull` refuses a
// download that could never run before it is installed, on a machine that
// may not even have the runtime yet.
func (c Contract) CheckFile(path string) error {
	in, out, err := FileSignature(path)
	if err != nil {
		return fmt.Errorf("%s: %w", c.Model, err)
	}
	_, err = c.Check(in, out)
	return err
}

// FileSignature reads the inputs and outputs a model file declares (see
// onnxgraph.Signature).
func FileSignature(path string) (inputs, outputs []TensorInfo, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	in, out, err := onnxgraph.Signature(data)
	if err != nil {
		return nil, nil, err
	}
	return tensorInfos(in), tensorInfos(out), nil
}

func tensorInfos(vs []onnxgraph.ValueInfo) []TensorInfo {
	out := make([]TensorInfo, len(vs))
	for i, v := range vs {
		out[i] = TensorInfo{Name: v.Name, DType: DType(v.Type.String()), Dims: v.Dims}
	}
	return out
}
