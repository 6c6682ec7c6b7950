package inference

import (
	"fmt"
	"strconv"
	"strings"
)

// DeviceKind says where the user asked the models to run.
type DeviceKind string

const (
	// DeviceAuto tries CUDA and falls back to the CPU with a warning.
	DeviceAuto DeviceKind = "auto"
	DeviceCPU  DeviceKind = "cpu"
	// DeviceCUDA fails the run when CUDA cannot be used.
	DeviceCUDA DeviceKind = "cuda"
	// DeviceTensorRT runs on TensorRT (fp16, engines cached), with CUDA
	// for what TensorRT cannot take; it falls back to CUDA alone, then to
	// the CPU, with a warning each.
	DeviceTensorRT DeviceKind = "tensorrt"
)

// Device is a parsed --device value.
type Device struct {
	Kind DeviceKind
	ID   int // CUDA device ordinal
}

func (d Device) String() string {
	if d.Kind == DeviceCUDA || d.Kind == DeviceTensorRT {
		return fmt.Sprintf("%s:%d", d.Kind, d.ID)
	}
	return string(d.Kind)
}

// Set parses s into d, as a pflag.Value: a bad --device is a usage error
// that names the flag while the command line is parsed.
func (d *Device) Set(s string) error {
	v, err := ParseDevice(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// Type names the value in the flag's help.
func (*Device) Type() string { return "device" }

// ParseDevice parses auto, cpu, cuda, cuda:N, tensorrt or tensorrt:N.
func ParseDevice(s string) (Device, error) {
	v := strings.ToLower(strings.TrimSpace(s))
	switch v {
	case "", "auto":
		return Device{Kind: DeviceAuto}, nil
	case "cpu":
		return Device{Kind: DeviceCPU}, nil
	case "cuda", "gpu":
		return Device{Kind: DeviceCUDA}, nil
	case "tensorrt", "trt":
		return Device{Kind: DeviceTensorRT}, nil
	}
	for _, kind := range []DeviceKind{DeviceCUDA, DeviceTensorRT} {
		if rest, ok := strings.CutPrefix(v, string(kind)+":"); ok {
			n, err := strconv.Atoi(rest)
			if err != nil || n < 0 {
				return Device{}, fmt.Errorf("invalid device %q: the CUDA device must be a number, as in %s:0", s, kind)
			}
			return Device{Kind: kind, ID: n}, nil
		}
	}
	return Device{}, fmt.Errorf("invalid device %q: use auto, cpu, cuda, cuda:N, tensorrt or tensorrt:N", s)
}
