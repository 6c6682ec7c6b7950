package video

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Codec is the video encoder ffmpeg writes the output with.
type Codec string

// The encoders anonymize can use. NVENC runs on the GPU's video engine,
// off the CPU; H100 and H200 have none, and there libx264 is the floor.
const (
	CodecAuto      Codec = "auto" // NVENC H.264 where it works, else libx264
	CodecX264      Codec = "libx264"
	CodecH264NVENC Codec = "h264_nvenc"
	CodecHEVCNVENC Codec = "hevc_nvenc"
)

// Codecs lists the values ParseCodec accepts.
var Codecs = []Codec{CodecAuto, CodecX264, CodecH264NVENC, CodecHEVCNVENC}

// ParseCodec reads an --encoder value.
func ParseCodec(s string) (Codec, error) {
	for _, c := range Codecs {
		if string(c) == s {
			return c, nil
		}
	}
	return "", fmt.Errorf("unknown encoder %q: use one of auto, libx264, h264_nvenc, hevc_nvenc", s)
}

// Set parses an --encoder value into c, as a pflag.Value.
func (c *Codec) Set(s string) error {
	v, err := ParseCodec(s)
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// String returns the encoder's name.
func (c Codec) String() string { return string(c) }

// Type names the value in the flag's help.
func (*Codec) Type() string { return "encoder" }

// Preset is an x264 speed preset; NVENC gets the matching p1 ... p7.
type Preset string

// Presets are x264's speed presets, fastest first.
var Presets = []Preset{"ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo"}

// ParsePreset reads a --preset value.
func ParsePreset(s string) (Preset, error) {
	if p := Preset(s); slices.Contains(Presets, p) {
		return p, nil
	}
	return "", fmt.Errorf("unknown preset %q: use one of %v", s, Presets)
}

// Set parses a --preset value into p, as a pflag.Value.
func (p *Preset) Set(s string) error {
	v, err := ParsePreset(s)
	if err != nil {
		return err
	}
	*p = v
	return nil
}

func (p Preset) String() string { return string(p) }

// Type names the value in the flag's help.
func (*Preset) Type() string { return "preset" }

// nvencPresets maps x264's speed presets onto NVENC's p1 (fastest) to p7
// (best), so that --preset means the same trade-off on either encoder.
var nvencPresets = map[Preset]string{
	"ultrafast": "p1", "superfast": "p1", "veryfast": "p2", "faster": "p3", "fast": "p4",
	"medium": "p5", "slow": "p6", "slower": "p7", "veryslow": "p7", "placebo": "p7",
}

// encoderArgs are ffmpeg's video encoder settings for codec. NVENC has no
// CRF: constant quality (-cq, on about the same 0-51 scale) with no bitrate
// cap is its nearest equivalent.
func encoderArgs(codec Codec, preset Preset, crf, threads int) []string {
	switch codec {
	case CodecH264NVENC, CodecHEVCNVENC:
		p, ok := nvencPresets[preset]
		if !ok {
			p = "p4"
		}
		return []string{"-c:v", string(codec), "-preset", p, "-tune", "hq", "-rc", "vbr", "-cq", strconv.Itoa(crf), "-b:v", "0", "-pix_fmt", "yuv420p"}
	}
	args := []string{"-c:v", "libx264", "-preset", string(preset), "-crf", strconv.Itoa(crf), "-pix_fmt", "yuv420p"}
	if threads > 0 {
		args = append(args, "-threads", strconv.Itoa(threads))
	}
	return args
}

// ProbeCodec encodes one small frame with codec, to tell whether this
// machine's ffmpeg and GPU can use it; the error says why not.
func ProbeCodec(ctx context.Context, ffmpeg string, codec Codec) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "color=c=gray:s=256x256:r=25",
		"-frames:v", "2"}
	args = append(args, encoderArgs(codec, "fast", 23, 0)...)
	out, err := exec.CommandContext(ctx, ffmpeg, append(args, "-f", "null", "-")...).CombinedOutput()
	if err != nil {
		return errors.New(encoderComplaint(string(out), codec, err))
	}
	return nil
}

// encoderComplaint picks the line of ffmpeg's output that says why codec
// failed ("[h264_nvenc @ 0x...] Cannot load libcuda.so.1"), without the
// address; ffmpeg's last line is only a generic "Error while opening
// encoder".
func encoderComplaint(out string, codec Codec, err error) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	prefix := "[" + string(codec) + " @ "
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			if i := strings.Index(l, "] "); i >= 0 {
				return strings.TrimSpace(l[i+2:])
			}
		}
	}
	if l := strings.TrimSpace(lines[len(lines)-1]); l != "" {
		return l
	}
	return err.Error()
}

// resolved caches what auto chose for each ffmpeg, with the reason NVENC
// was not taken: probing costs a process start, and a batch opens an
// encoder per video.
var resolved sync.Map // ffmpeg path -> resolution

type resolution struct {
	codec Codec
	why   error
}

// ResolveCodec turns auto into the encoder this machine can use: H.264 on
// NVENC when a test encode works, libx264 otherwise (why says what NVENC
// answered). Other codecs are returned as they are.
func ResolveCodec(ctx context.Context, ffmpeg string, c Codec) (codec Codec, why error) {
	if c != CodecAuto {
		if c == "" {
			c = CodecX264
		}
		return c, nil
	}
	if r, ok := resolved.Load(ffmpeg); ok {
		return r.(resolution).codec, r.(resolution).why
	}
	r := resolution{codec: CodecH264NVENC}
	if err := ProbeCodec(ctx, ffmpeg, CodecH264NVENC); err != nil {
		if ctx.Err() != nil {
			return CodecX264, err // not cached: a later run may probe again
		}
		r = resolution{codec: CodecX264, why: err}
	}
	resolved.Store(ffmpeg, r)
	return r.codec, r.why
}
