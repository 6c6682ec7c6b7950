package models

import (
	"strings"
	"testing"
)

func TestContractCheck(t *testing.T) {
	detrIn := func(dims ...int64) []TensorInfo {
		return []TensorInfo{{Name: DETRPixelValues, DType: Float32, Dims: dims}}
	}
	detrOut := func(q, c int64) []TensorInfo {
		return []TensorInfo{
			{Name: DETRLogits, DType: Float32, Dims: []int64{-1, q, c}},
			{Name: DETRPredBoxes, DType: Float32, Dims: []int64{-1, q, 4}},
		}
	}
	tests := []struct {
		name    string
		inputs  []TensorInfo
		outputs []TensorInfo
		wantErr string
	}{
		{"symbolic sizes", detrIn(-1, 3, -1, -1), detrOut(-1, -1), ""},
		{"fixed batch and classes", detrIn(1, 3, -1, -1), detrOut(100, 92), ""},
		{"fixed height", detrIn(-1, 3, 750, -1), detrOut(100, 92), `"pixel_values" fixes dimension 2 at 750, which anonymize sets for each video`},
		{"fixed width", detrIn(-1, 3, -1, 1333), detrOut(100, 92), `fixes dimension 3 at 1333`},
		{"pixel_mask of the image's size", append(detrIn(-1, 3, -1, -1), TensorInfo{Name: DETRPixelMask, DType: Int64, Dims: []int64{-1, -1, -1}}), detrOut(100, 92), ""},
		// Hugging Face's exporter: detect feeds a 64x64 mask of ones.
		{"pixel_mask fixed at 64x64", append(detrIn(-1, 3, -1, -1), TensorInfo{Name: DETRPixelMask, DType: Int64, Dims: []int64{-1, 64, 64}}), detrOut(100, 92), ""},
		{"pixel_mask of another type", append(detrIn(-1, 3, -1, -1), TensorInfo{Name: DETRPixelMask, DType: Float32, Dims: []int64{-1, 64, 64}}), detrOut(100, 92), `"pixel_mask" has type float32, want int64`},
		{"no queries", detrIn(-1, 3, -1, -1), detrOut(0, 92), `"logits" dimension 1 is 0`},
		{"wrong channel count", detrIn(-1, 4, -1, -1), detrOut(100, 92), `"pixel_values" dimension 1 is 4, want 3`},
		{"unknown input", append(detrIn(-1, 3, -1, -1), TensorInfo{Name: "scale", DType: Float32, Dims: []int64{1}}), detrOut(100, 92), `unexpected input "scale"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DETR.Check(tt.inputs, tt.outputs)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Check: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Check: %v, want %q", err, tt.wantErr)
			}
		})
	}
}
