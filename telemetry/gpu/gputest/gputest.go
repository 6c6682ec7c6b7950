package gputest

import (
	"fmt"
	"os"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
)

// H100s returns an NVML with n H100 GPUs (n at most 8) with known readings:
// GPU i has UUID GPU-fake-<i>, 80 GiB of which 10+i GiB used, runs at
// 40+10i % (general utilisation), its video decoder at 5+i % and its
// encoder at 0 %, 50+i °C, 300+i W under an enforced power limit of
// 700 W, and holds (i+1) GiB for this process (listed under os.Getpid())
// and 5 GiB for another one (PID 1).
func H100s(n int) *dgxa100.Server {
	s := dgxa100.New()
	s.DeviceGetCountFunc = func() (int, nvml.Return) { return n, nvml.SUCCESS }
	for i := 0; i < n; i++ {
		d := s.Devices[i].(*dgxa100.Device)
		i := i
		d.Name = "NVIDIA H100 80GB HBM3"
		d.UUID = fmt.Sprintf("GPU-fake-%d", i)
		d.MemoryInfo = nvml.Memory{Total: 80 << 30, Used: uint64(10+i) << 30}
		d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
			return nvml.Utilization{Gpu: uint32(40 + 10*i), Memory: 20}, nvml.SUCCESS
		}
		// NVML: utilisation in percent, then the sampling period in µs.
		d.GetDecoderUtilizationFunc = func() (uint32, uint32, nvml.Return) { return uint32(5 + i), 167000, nvml.SUCCESS }
		d.GetEncoderUtilizationFunc = func() (uint32, uint32, nvml.Return) { return 0, 167000, nvml.SUCCESS }
		d.GetEnforcedPowerLimitFunc = func() (uint32, nvml.Return) { return 700000, nvml.SUCCESS } // milliwatts
		d.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return uint32(50 + i), nvml.SUCCESS }
		d.GetPowerUsageFunc = func() (uint32, nvml.Return) { return uint32(300000 + 1000*i), nvml.SUCCESS }
		d.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
			return []nvml.ProcessInfo{
				{Pid: uint32(os.Getpid()), UsedGpuMemory: uint64(i+1) << 30},
				{Pid: 1, UsedGpuMemory: 5 << 30},
			}, nvml.SUCCESS
		}
	}
	return s
}
