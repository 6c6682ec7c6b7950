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
)

// Device is a parsed --device value.
type Device struct {
	Kind DeviceKind
	ID   int // CUDA device ordinal
}

func (d Device) String() string {
	if d.Kind == DeviceCUDA {
		return fmt.Sprintf("cuda:%d", d.ID)
	}
	return string(d.Kind)
}

// ParseDevice parses auto, cpu, cuda or cuda:N.
func ParseDevice(s string) (Device, error) {
	v := strings.ToLower(strings.TrimSpace(s))
	switch v {
	case "", "auto":
		return Device{Kind: DeviceAuto}, nil
	case "cpu":
		return Device{Kind: DeviceCPU}, nil
	case "cuda", "gpu":
		return Device{Kind: DeviceCUDA}, nil
	}
	if rest, ok := strings.CutPrefix(v, "cuda:"); ok {
		n, err := strconv.Atoi(rest)
		if err != nil || n < 0 {
			return Device{}, fmt.Errorf("invalid device %q: the CUDA device must be a number, as in cuda:0", s)
		}
		return Device{Kind: DeviceCUDA, ID: n}, nil
	}
	return Device{}, fmt.Errorf("invalid device %q: use auto, cpu, cuda or cuda:N", s)
}
