package gpu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Metric names: the OpenTelemetry hardware semantic conventions where they
// exist, our own for the per-process memory.
const (
	// MetricUtilization has one series per GPU and AttrTask: general (the
	// GPU as a whole), encoder and decoder (the video engines).
	MetricUtilization       = "hw.gpu.utilization"
	MetricMemoryUsage       = "hw.gpu.memory.usage"
	MetricMemoryLimit       = "hw.gpu.memory.limit"
	MetricMemoryUtilization = "hw.gpu.memory.utilization"
	MetricTemperature       = "hw.temperature"
	MetricPower             = "hw.power"
	// MetricPowerLimit is the power limit the driver enforces. The
	// semantic conventions have hw.power for the draw, but no GPU power
	// limit; the name follows their pattern for limits
	// (hw.gpu.memory.limit, hw.power_supply.limit), and hw.power divided
	// by it is the fraction of the limit drawn.
	MetricPowerLimit    = "hw.gpu.power.limit"
	MetricProcessMemory = "anonymize.process.gpu.memory.usage"
)

// AttrTask is the semantic conventions' attribute saying which part of the
// GPU a hw.gpu.utilization series measures, with its values.
const (
	AttrTask    = "hw.gpu.task"
	TaskGeneral = "general"
	TaskEncoder = "encoder"
	TaskDecoder = "decoder"
)

// procStatus is read once at Open for the process's PID in outer PID
// namespaces; tests point it elsewhere.
var procStatus = "/proc/self/status"

// ErrUnavailable is returned by Open when there is no usable NVML (no
// NVIDIA driver, as on CI machines) or no GPU.
var ErrUnavailable = errors.New("NVML unavailable")

// Device is one GPU.
type Device struct {
	Index  int
	UUID   string
	Name   string
	handle nvml.Device
}

// Collector reads the GPUs through NVML.
type Collector struct {
	lib     nvml.Interface
	devices []Device
	pid     uint32
	reg     metric.Registration

	mu       sync.Mutex
	procAt   time.Time
	procMem  int64
	procOK   bool
	interval time.Duration
	// matched: some sample found c.pid among NVML's compute processes;
	// foreignOnly: some sample found compute processes, none of them c.pid.
	matched, foreignOnly bool
}

// Open initialises NVML and lists the GPUs. lib nil uses the real library.
// The error wraps ErrUnavailable when there is nothing to report on.
func Open(lib nvml.Interface) (*Collector, error) {
	if lib == nil {
		lib = nvml.New()
	}
	if ret := lib.Init(); ret != nvml.SUCCESS {
		return nil, fmt.Errorf("%w: %s", ErrUnavailable, nvml.ErrorString(ret))
	}
	c := &Collector{lib: lib, pid: ownPID(), interval: 250 * time.Millisecond}
	n, ret := lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		lib.Shutdown()
		return nil, fmt.Errorf("%w: count devices: %s", ErrUnavailable, nvml.ErrorString(ret))
	}
	for i := 0; i < n; i++ {
		h, ret := lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			continue
		}
		uuid, _ := h.GetUUID()
		name, _ := h.GetName()
		c.devices = append(c.devices, Device{Index: i, UUID: uuid, Name: name, handle: h})
	}
	if len(c.devices) == 0 {
		lib.Shutdown()
		return nil, fmt.Errorf("%w: no GPU found", ErrUnavailable)
	}
	return c, nil
}

// Devices lists the GPUs.
func (c *Collector) Devices() []Device { return c.devices }

// Index returns the NVML index of the GPU with that UUID.
func (c *Collector) Index(uuid string) (int, bool) {
	for _, d := range c.devices {
		if d.UUID == uuid {
			return d.Index, true
		}
	}
	return 0, false
}

// Model names the GPU model(s), for the telemetry resource.
func (c *Collector) Model() string {
	seen := map[string]bool{}
	var names []string
	for _, d := range c.devices {
		if !seen[d.Name] {
			seen[d.Name] = true
			names = append(names, d.Name)
		}
	}
	return strings.Join(names, ", ")
}

func (d Device) attrs(extra ...attribute.KeyValue) attribute.Set {
	return attribute.NewSet(append([]attribute.KeyValue{
		attribute.String("hw.id", d.UUID),
		attribute.String("hw.name", d.Name),
		attribute.String("hw.vendor", "NVIDIA"),
		attribute.String("hw.type", "gpu"),
	}, extra...)...)
}

// ownPID is the PID to look for in NVML's process lists: the outermost one
// /proc/self/status shows, else getpid's.
func ownPID() uint32 {
	if b, err := os.ReadFile(procStatus); err == nil {
		if pid, ok := outermostPID(string(b)); ok {
			return pid
		}
	}
	return uint32(os.Getpid())
}

// outermostPID reads the NSpid line of a /proc/<pid>/status: the process's
// PID in each PID namespace it is in, from the one of the procfs the file
// was read from down to its own. With more than one, it returns the first:
// where /proc comes from the host's PID namespace that is the host PID,
// the one NVML reports. ok is false without such a line (old kernels) or
// with a single PID, which is getpid's.
func outermostPID(status string) (pid uint32, ok bool) {
	for _, line := range strings.Split(status, "\n") {
		rest, found := strings.CutPrefix(line, "NSpid:")
		if !found {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 2 {
			return 0, false
		}
		n, err := strconv.ParseUint(f[0], 10, 32)
		if err != nil || n == 0 {
			return 0, false
		}
		return uint32(n), true
	}
	return 0, false
}

// Register creates the observable gauges on meter; one callback reads every
// GPU at each collection.
func (c *Collector) Register(meter metric.Meter) error {
	var errs []error
	f64 := func(name, unit, desc string) metric.Float64ObservableGauge {
		g, err := meter.Float64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return g
	}
	i64 := func(name, unit, desc string) metric.Int64ObservableGauge {
		g, err := meter.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return g
	}
	util := f64(MetricUtilization, "1", "Fraction of time the GPU (hw.gpu.task=general), its video encoder or decoder was busy over the last sample period.")
	memUtil := f64(MetricMemoryUtilization, "1", "Fraction of GPU memory used.")
	memUsage := i64(MetricMemoryUsage, "By", "GPU memory used.")
	memLimit := i64(MetricMemoryLimit, "By", "Size of the GPU memory.")
	temp := f64(MetricTemperature, "Cel", "GPU temperature.")
	power := f64(MetricPower, "W", "GPU power draw.")
	powerLimit := f64(MetricPowerLimit, "W", "Enforced power limit of the GPU.")
	proc := i64(MetricProcessMemory, "By", "GPU memory used by this anonymize process.")
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("create GPU metrics: %w", err)
	}
	// A device's attributes never change: their sets are built once, not
	// at every collection.
	type deviceOpts struct{ device, general, encoder, decoder metric.ObserveOption }
	opts := make([]deviceOpts, len(c.devices))
	for i, d := range c.devices {
		task := func(t string) metric.ObserveOption {
			return metric.WithAttributeSet(d.attrs(attribute.String(AttrTask, t)))
		}
		opts[i] = deviceOpts{metric.WithAttributeSet(d.attrs()), task(TaskGeneral), task(TaskEncoder), task(TaskDecoder)}
	}
	reg, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		procs := c.sampleProcesses()
		for i, d := range c.devices {
			set := opts[i].device
			if u, ret := d.handle.GetUtilizationRates(); ret == nvml.SUCCESS {
				o.ObserveFloat64(util, float64(u.Gpu)/100, opts[i].general)
			}
			// Percent over a sampling period NVML picks (returned, not
			// reported).
			if u, _, ret := d.handle.GetEncoderUtilization(); ret == nvml.SUCCESS {
				o.ObserveFloat64(util, float64(u)/100, opts[i].encoder)
			}
			if u, _, ret := d.handle.GetDecoderUtilization(); ret == nvml.SUCCESS {
				o.ObserveFloat64(util, float64(u)/100, opts[i].decoder)
			}
			if m, ret := d.handle.GetMemoryInfo(); ret == nvml.SUCCESS {
				o.ObserveInt64(memUsage, int64(m.Used), set)
				o.ObserveInt64(memLimit, int64(m.Total), set)
				if m.Total > 0 {
					o.ObserveFloat64(memUtil, float64(m.Used)/float64(m.Total), set)
				}
			}
			if t, ret := d.handle.GetTemperature(nvml.TEMPERATURE_GPU); ret == nvml.SUCCESS {
				o.ObserveFloat64(temp, float64(t), set)
			}
			if p, ret := d.handle.GetPowerUsage(); ret == nvml.SUCCESS {
				o.ObserveFloat64(power, float64(p)/1000, set) // NVML reports milliwatts
			}
			if p, ret := d.handle.GetEnforcedPowerLimit(); ret == nvml.SUCCESS {
				o.ObserveFloat64(powerLimit, float64(p)/1000, set) // milliwatts too
			}
			if b, ok := procs[d.Index]; ok {
				o.ObserveInt64(proc, b, set)
			}
		}
		return nil
	}, util, memUtil, memUsage, memLimit, temp, power, powerLimit, proc)
	if err != nil {
		return fmt.Errorf("register GPU metrics: %w", err)
	}
	c.reg = reg
	return nil
}

// sampleProcesses returns the GPU memory this process holds on each GPU.
func (c *Collector) sampleProcesses() map[int]int64 {
	out := map[int]int64{}
	var total int64
	found, listed := false, false
	for _, d := range c.devices {
		procs, ret := d.handle.GetComputeRunningProcesses()
		if ret != nvml.SUCCESS {
			continue
		}
		listed = listed || len(procs) > 0
		for _, p := range procs {
			if p.Pid == c.pid {
				out[d.Index] += int64(p.UsedGpuMemory)
				total += int64(p.UsedGpuMemory)
				found = true
			}
		}
	}
	c.mu.Lock()
	c.procAt, c.procMem, c.procOK = time.Now(), total, found
	c.matched = c.matched || found
	c.foreignOnly = c.foreignOnly || (listed && !found)
	c.mu.Unlock()
	return out
}

// PIDNamespaceMismatch reports whether the per-process GPU memory
// (anonymize.process.gpu.memory.usage, ProcessMemory) went missing because
// of PID namespaces: some sample found compute processes on the GPUs but
// none with this process's PID, and no sample ever found it.
//
// NVML lists processes by their PID in the host's PID namespace. A process
// in a container has a PID namespace of its own, so its getpid never
// matches. Where /proc/self/status shows the host PID (its NSpid line has
// more than one PID, as when /proc comes from the host), that one is
// matched instead; otherwise there is no way to tell which listed process
// is this one. The fix is to run in the host's PID namespace: `pid: host`
// for the service in Docker Compose, `hostPID: true` in a Kubernetes pod
// spec. The trade-off: the container then sees every process on the
// host (command lines, and environments where permissions allow) and, as
// root, can signal them, so grant it only where the per-process figure is
// worth that; hw.gpu.memory.usage (the whole GPU) works either way.
//
// It means something only after a run that used the GPU: a CPU run on a
// GPU that others use also sees only foreign processes. It reads what the
// samples recorded, so it works after Close too.
func (c *Collector) PIDNamespaceMismatch() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.foreignOnly && !c.matched
}

// ProcessMemory returns the GPU memory this process holds over all GPUs.
// It reads NVML at most every quarter second, so calling it for every
// frame costs next to nothing.
func (c *Collector) ProcessMemory() (int64, bool) {
	c.mu.Lock()
	fresh := time.Since(c.procAt) < c.interval
	mem, ok := c.procMem, c.procOK
	c.mu.Unlock()
	if fresh {
		return mem, ok
	}
	c.sampleProcesses()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.procMem, c.procOK
}

// Close unregisters the gauges and shuts NVML down.
func (c *Collector) Close() error {
	var err error
	if c.reg != nil {
		err = c.reg.Unregister()
	}
	if ret := c.lib.Shutdown(); ret != nvml.SUCCESS {
		err = errors.Join(err, fmt.Errorf("NVML shutdown: %s", nvml.ErrorString(ret)))
	}
	return err
}
