// Package gpu reports NVIDIA GPU metrics through NVML as OpenTelemetry
// observable gauges, under the semantic-convention names (hw.gpu.*), plus
// the GPU memory this process holds.
package gpu
