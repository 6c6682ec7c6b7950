package video

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gocv.io/x/gocv"
)

// Info describes a video file.
type Info struct {
	Path   string
	Width  int // frame width as decoded, after applying Rotation
	Height int // frame height as decoded, after applying Rotation
	FPS    Rational
	// FrameCount is the number of frames the container declares or, when it
	// declares none, an estimate from duration and rate; 0 means unknown.
	FrameCount int
	// FrameCountExact is true when FrameCount comes from an MP4/MOV sample
	// table, which lists every frame, rather than from an estimate.
	FrameCountExact bool
	Duration        time.Duration
	Codec           string // video codec, e.g. "h264"
	PixFmt          string // pixel format, e.g. "yuv420p"; empty when unknown
	Container       string // ffprobe's format_name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
	HasAudio        bool
	AudioCodec      string // codec of the first audio stream, e.g. "aac"
	// Rotation is the display rotation stored in the file (phone videos),
	// 0, 90, 180 or 270 degrees. OpenCV applies it while decoding, so the
	// frames are upright and Width and Height are already swapped for 90
	// and 270; the output needs no rotation flag.
	Rotation int
	Prober   string // "ffprobe" or "opencv": which tool produced this Info
}

// probeResult is Info plus what the encoder needs from its source.
type probeResult struct {
	Info
	audioCodecs []string          // every audio stream's codec
	tags        map[string]string // global metadata
	color       colorTags
}

type colorTags struct{ space, primaries, transfer string }

// Probe inspects the video at path with ffprobe, or with OpenCV when ffprobe
// is not on PATH (less exact: the rate is snapped from a float, audio is not
// seen and the frame count is an estimate).
func Probe(ctx context.Context, path string) (Info, error) {
	ffprobe, _ := exec.LookPath("ffprobe")
	r, err := probeWith(ctx, path, ffprobe)
	return r.Info, err
}

// probeWith probes with the ffprobe binary at ffprobe, or with OpenCV when
// ffprobe is "".
func probeWith(ctx context.Context, path, ffprobe string) (probeResult, error) {
	st, err := checkInput(path)
	if err != nil {
		return probeResult{}, err
	}
	if st.Size() == 0 {
		return probeResult{}, fmt.Errorf("%s is not a video file (it is empty)", path)
	}
	if ffprobe == "" {
		return probeOpenCV(path)
	}
	return probeFFprobe(ctx, path, ffprobe)
}

type ffprobeStream struct {
	Index          int               `json:"index"`
	CodecType      string            `json:"codec_type"`
	CodecName      string            `json:"codec_name"`
	Width          int               `json:"width"`
	Height         int               `json:"height"`
	PixFmt         string            `json:"pix_fmt"`
	AvgFrameRate   string            `json:"avg_frame_rate"`
	RFrameRate     string            `json:"r_frame_rate"`
	NbFrames       string            `json:"nb_frames"`
	Duration       string            `json:"duration"`
	ColorSpace     string            `json:"color_space"`
	ColorPrimaries string            `json:"color_primaries"`
	ColorTransfer  string            `json:"color_transfer"`
	Tags           map[string]string `json:"tags"`
	Disposition    struct {
		AttachedPic int `json:"attached_pic"`
	} `json:"disposition"`
	SideDataList []struct {
		Rotation float64 `json:"rotation"`
	} `json:"side_data_list"`
}

type ffprobeOutput struct {
	Streams []ffprobeStream `json:"streams"`
	Format  struct {
		FormatName string            `json:"format_name"`
		Duration   string            `json:"duration"`
		Tags       map[string]string `json:"tags"`
	} `json:"format"`
}

// runFFprobe runs ffprobe on path and decodes its JSON report.
func runFFprobe(ctx context.Context, ffprobe, path string) (ffprobeOutput, error) {
	var out ffprobeOutput
	var stdout bytes.Buffer
	stderr := newTailBuffer(8 << 10)
	// "file:" keeps a path that starts with "-" or contains ":" from being
	// read as an option or a protocol.
	cmd := exec.CommandContext(ctx, ffprobe, "-v", "error", "-print_format", "json",
		"-show_format", "-show_streams", "file:"+path)
	cmd.Stdout = &stdout
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return out, fmt.Errorf("probe %s: %w", path, ctx.Err())
		}
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) {
			return out, fmt.Errorf("probe %s: run ffprobe: %w", path, err)
		}
		why := "no error message"
		if lines := stderr.lastLines(1); len(lines) > 0 {
			why = strings.TrimPrefix(lines[0], "file:"+path+": ")
		}
		return out, fmt.Errorf("%s is not a video file (ffprobe: %s)", path, why)
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return out, fmt.Errorf("probe %s: cannot parse ffprobe output: %w", path, err)
	}
	return out, nil
}

func probeFFprobe(ctx context.Context, path, ffprobe string) (probeResult, error) {
	out, err := runFFprobe(ctx, ffprobe, path)
	if err != nil {
		return probeResult{}, err
	}
	res := probeResult{Info: Info{Path: path, Container: out.Format.FormatName, Prober: "ffprobe"}, tags: out.Format.Tags}
	var video *ffprobeStream
	for i := range out.Streams {
		s := &out.Streams[i]
		switch s.CodecType {
		case "video":
			// Cover art in audio files shows up as a one-frame video stream.
			if video == nil && s.Disposition.AttachedPic == 0 {
				video = s
			}
		case "audio":
			if !res.HasAudio {
				res.HasAudio, res.AudioCodec = true, s.CodecName
			}
			res.audioCodecs = append(res.audioCodecs, s.CodecName)
		}
	}
	if video == nil {
		return probeResult{}, fmt.Errorf("%s is not a video file (it has no video stream)", path)
	}
	res.Codec, res.PixFmt = video.CodecName, video.PixFmt
	res.Width, res.Height = video.Width, video.Height
	res.color = colorTags{space: video.ColorSpace, primaries: video.ColorPrimaries, transfer: video.ColorTransfer}

	// avg_frame_rate is frames over duration, so encoding at it keeps the
	// video as long as its audio even for variable-rate sources;
	// r_frame_rate is the container's base rate and only a fallback.
	res.FPS = parseProbeRate(video.AvgFrameRate)
	if !res.FPS.Valid() {
		res.FPS = parseProbeRate(video.RFrameRate)
	}
	if !res.FPS.Valid() {
		return probeResult{}, fmt.Errorf("%s has no usable frame rate (ffprobe reports avg_frame_rate %q, r_frame_rate %q)",
			path, video.AvgFrameRate, video.RFrameRate)
	}

	res.Rotation = rotationOf(video)
	if res.Rotation%180 != 0 {
		res.Width, res.Height = res.Height, res.Width
	}

	dur := parseSeconds(video.Duration)
	if dur <= 0 {
		dur = parseSeconds(out.Format.Duration)
	}
	// Containers written without any frame say so in one of two ways.
	if video.NbFrames == "0" || (dur == 0 && isZero(video.Duration)) {
		return probeResult{}, fmt.Errorf("%s has no video frames", path)
	}
	if dur > 0 {
		res.Duration = time.Duration(dur * float64(time.Second))
	}

	if n, err := strconv.Atoi(video.NbFrames); err == nil && video.NbFrames != "" {
		res.FrameCount = n
		res.FrameCountExact = isMOV(out.Format.FormatName)
		// An edit list (a clip cut without re-encoding) makes MP4 players
		// and decoders skip samples that nb_frames still counts; the
		// stream duration honours the edit list.
		if est := int(math.Round(dur * res.FPS.Float())); res.FrameCountExact && dur > 0 && est < n-max(2, n/100) {
			res.FrameCount, res.FrameCountExact = est, false
		}
	} else if dur > 0 {
		res.FrameCount = int(math.Round(dur * res.FPS.Float()))
	}
	if res.Duration == 0 && res.FrameCount > 0 {
		res.Duration = res.FPS.Duration(res.FrameCount)
	}
	return res, nil
}

// isMOV reports whether ffprobe's format_name is the MP4/MOV family, whose
// sample tables make nb_frames an exact count.
func isMOV(formatName string) bool {
	for _, f := range strings.Split(formatName, ",") {
		if f == "mov" || f == "mp4" {
			return true
		}
	}
	return false
}

// rotationOf returns the stream's display rotation normalised to 0, 90, 180
// or 270 degrees, with the sign OpenCV uses for CAP_PROP_ORIENTATION_META.
// ffprobe reports it as display matrix side data, older versions as a
// "rotate" tag.
func rotationOf(s *ffprobeStream) int {
	deg := 0.0
	found := false
	for _, sd := range s.SideDataList {
		if sd.Rotation != 0 {
			deg, found = sd.Rotation, true
			break
		}
	}
	if !found {
		if v, err := strconv.ParseFloat(s.Tags["rotate"], 64); err == nil {
			deg = v
		}
	}
	r := int(math.Round(deg/90)) * 90 % 360
	if r < 0 {
		r += 360
	}
	return r
}

// parseProbeRate parses ffprobe's "N/D" rates, returning the zero Rational
// for "0/0" and other unusable values.
func parseProbeRate(s string) Rational {
	r, err := ParseRational(s)
	if err != nil || r.Float() > 1000 {
		return Rational{}
	}
	return r
}

func isZero(s string) bool {
	f, err := strconv.ParseFloat(s, 64)
	return err == nil && f == 0
}

func parseSeconds(s string) float64 {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0
	}
	return f
}

// OpenCV 4.5+ property ids that gocv v0.31.0 has no names for.
const (
	capPropOrientationMeta gocv.VideoCaptureProperties = 48
	capPropOrientationAuto gocv.VideoCaptureProperties = 49
)

func probeOpenCV(path string) (probeResult, error) {
	vc, err := openCapture(path)
	if err != nil {
		return probeResult{}, fmt.Errorf("%s is not a video file (OpenCV cannot open it)", path)
	}
	defer vc.Close()
	res := probeResult{Info: Info{
		Path:      path,
		Width:     int(vc.Get(gocv.VideoCaptureFrameWidth)),
		Height:    int(vc.Get(gocv.VideoCaptureFrameHeight)),
		FPS:       FromFloat(vc.Get(gocv.VideoCaptureFPS)),
		Codec:     strings.ToLower(strings.TrimRight(vc.CodecString(), "\x00 ")),
		Container: strings.TrimPrefix(strings.ToLower(filepath.Ext(path)), "."),
		Rotation:  int(vc.Get(capPropOrientationMeta)),
		Prober:    "opencv",
	}}
	if res.Width <= 0 || res.Height <= 0 {
		return probeResult{}, fmt.Errorf("%s is not a video file (OpenCV finds no video stream)", path)
	}
	if !res.FPS.Valid() {
		return probeResult{}, fmt.Errorf("%s has no usable frame rate (OpenCV reports %g fps)", path, vc.Get(gocv.VideoCaptureFPS))
	}
	if n := vc.Get(gocv.VideoCaptureFrameCount); n > 0 && !math.IsInf(n, 0) {
		res.FrameCount = int(math.Round(n))
		res.Duration = res.FPS.Duration(res.FrameCount)
	}
	return res, nil
}

// openCapture opens path with OpenCV's FFmpeg backend, the one whose
// behaviour (frame counts, rotation) this package relies on, falling back
// to whatever backend OpenCV picks.
func openCapture(path string) (*gocv.VideoCapture, error) {
	vc, err := gocv.VideoCaptureFileWithAPI(path, gocv.VideoCaptureFFmpeg)
	if err != nil {
		vc.Close()
		vc, err = gocv.VideoCaptureFile(path)
		if err != nil {
			vc.Close()
			return nil, err
		}
	}
	// Decode upright frames for phone videos shot in portrait. OpenCV 4.6
	// does so by default; asking makes it explicit.
	vc.Set(capPropOrientationAuto, 1)
	return vc, nil
}
