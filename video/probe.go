package video

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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
	Path string
	// Width and Height are the upright frame size, as players show it and
	// as Reader returns frames: Orientation applied.
	Width, Height int
	// CodedWidth and CodedHeight are the size as stored in the stream.
	CodedWidth, CodedHeight int
	// FPS is the nominal frame rate: the exact constant rate or, for a
	// variable-rate video (VariableRate), the average one.
	FPS Rational
	// VariableRate is true when the frames are not evenly spaced (phones,
	// screen recorders, edited WebM); every frame's own time is kept.
	VariableRate bool
	// PeakFPS is the highest rate the frames come at: FPS for a constant
	// rate, the closest pair's for a variable one (at most twice FPS).
	// Buffers sized in time hold this many frames a second.
	PeakFPS float64
	// TimeBase is the video stream's clock, in which its timestamps are
	// exact; the output keeps it. Zero when unknown (OpenCV probe).
	TimeBase Rational
	// FrameCount is the number of frames the decoder will return, counted
	// from the stream's packets when FrameCountExact, else the count the
	// container declares or an estimate from duration and rate; 0 means
	// unknown.
	FrameCount      int
	FrameCountExact bool
	Duration        time.Duration
	Codec           string // video codec, e.g. "h264"
	PixFmt          string // pixel format, e.g. "yuv420p"; empty when unknown
	Container       string // ffprobe's format_name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
	HasAudio        bool
	AudioCodec      string // codec of the first audio stream, e.g. "aac"
	// Orientation is the display transform stored in the file (phone
	// videos shot in portrait). Reader applies it, so frames are upright,
	// and the output is written upright, without one.
	Orientation Orientation
	// SAR is the shape of a pixel of the upright frame (width:height) when
	// pixels are not square (anamorphic DV and DVD video); zero when square.
	SAR Rational
	// Subtitles and Data are the streams besides video and audio.
	Subtitles []Stream
	Data      []Stream
	// CoverArt is true when the file carries a still picture (cover art, a
	// thumbnail): it is never anonymized, so never copied.
	CoverArt bool
	Prober   string // "ffprobe" or "opencv": which tool produced this Info
}

// Stream is a subtitle or data stream of the input.
type Stream struct {
	Index    int    // index in the input file
	Codec    string // e.g. "subrip", "mov_text", "hdmv_pgs_subtitle", "bin_data"
	Tag      string // codec tag, e.g. "tmcd", "gpmd"; "" when none
	Language string // e.g. "eng"; "" when not stated
}

func (s Stream) String() string {
	name := s.Codec
	if s.Tag != "" && !strings.HasPrefix(s.Tag, "[") && s.Tag != s.Codec {
		name += " " + s.Tag
	}
	return fmt.Sprintf("#%d (%s)", s.Index, name)
}

// Rate describes the frame rate for people: "30000/1001 fps" or
// "variable (29.4 fps on average)".
func (i Info) Rate() string {
	if i.VariableRate {
		return fmt.Sprintf("variable (%.3g fps on average)", i.FPS.Float())
	}
	return i.FPS.String() + " fps"
}

// probeResult is Info plus what the reader and the encoder need from the
// source.
type probeResult struct {
	Info
	audioCodecs []string          // every audio stream's codec
	tags        map[string]string // global metadata
	color       colorTags
	// streamIndex is the video stream's index in the file.
	streamIndex int
	// startPTS is the video stream's first timestamp in TimeBase ticks,
	// which OpenCV's positions count from; fileStart is the earliest start
	// of any stream, which output timestamps count from (as ffmpeg makes
	// every input's).
	startPTS  int64
	fileStart time.Duration
	// timeline is the packet scan; nil without ffprobe.
	timeline *timeline
	// declaredFrames is the frame count the container's index states (MP4
	// and MOV sample tables, the AVI header) and declaredEnd the video's
	// end it states (Matroska's per-track DURATION tag, MP4's track
	// duration); 0 when not stated. A packet scan that ends well short of
	// them shows that the file was cut.
	declaredFrames int
	declaredEnd    time.Duration
	// timecode is the SMPTE timecode of the first frame (cameras record it
	// in a tmcd track), and attachments counts Matroska attachments.
	timecode    string
	attachments int
}

type colorTags struct{ space, primaries, transfer string }

// Probe inspects the video at path with ffprobe, or with OpenCV when ffprobe
// is not on PATH (less exact: the rate is snapped from a float, audio is not
// seen and the frame count is an estimate).
func Probe(ctx context.Context, path string) (Info, error) {
	r, err := probeFile(ctx, path, nil)
	return r.Info, err
}

// probeFile probes path with the ffprobe on PATH, or with OpenCV when there is
// none.
func probeFile(ctx context.Context, path string, log *slog.Logger) (probeResult, error) {
	ffprobe, _ := exec.LookPath("ffprobe")
	return probeWith(ctx, path, ffprobe, log)
}

// probeWith probes with the ffprobe binary at ffprobe, or with OpenCV when
// ffprobe is "". Warnings (a display matrix that turns by an odd angle)
// go to log, which may be nil.
func probeWith(ctx context.Context, path, ffprobe string, log *slog.Logger) (probeResult, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
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
	return probeFFprobe(ctx, path, ffprobe, log, true)
}

// probeStreams is what the encoder needs to know of its source: streams,
// tags and codecs, without the packet scan.
func probeStreams(ctx context.Context, path, ffprobe string) (probeResult, error) {
	if _, err := checkInput(path); err != nil {
		return probeResult{}, err
	}
	return probeFFprobe(ctx, path, ffprobe, slog.New(slog.DiscardHandler), false)
}

type ffprobeStream struct {
	Index             int               `json:"index"`
	CodecType         string            `json:"codec_type"`
	CodecName         string            `json:"codec_name"`
	CodecTag          string            `json:"codec_tag_string"`
	Width             int               `json:"width"`
	Height            int               `json:"height"`
	PixFmt            string            `json:"pix_fmt"`
	SampleAspectRatio string            `json:"sample_aspect_ratio"`
	AvgFrameRate      string            `json:"avg_frame_rate"`
	RFrameRate        string            `json:"r_frame_rate"`
	TimeBase          string            `json:"time_base"`
	StartPTS          *int64            `json:"start_pts"`
	NbFrames          string            `json:"nb_frames"`
	Duration          string            `json:"duration"`
	ColorSpace        string            `json:"color_space"`
	ColorPrimaries    string            `json:"color_primaries"`
	ColorTransfer     string            `json:"color_transfer"`
	Tags              map[string]string `json:"tags"`
	Disposition       struct {
		AttachedPic int `json:"attached_pic"`
	} `json:"disposition"`
	SideDataList []struct {
		SideDataType  string  `json:"side_data_type"`
		DisplayMatrix string  `json:"displaymatrix"`
		Rotation      float64 `json:"rotation"`
	} `json:"side_data_list"`
}

type ffprobeOutput struct {
	Streams []ffprobeStream `json:"streams"`
	Format  struct {
		FormatName string            `json:"format_name"`
		Duration   string            `json:"duration"`
		StartTime  string            `json:"start_time"`
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
	cmd := command(ctx, ffprobe, "-v", "error", "-print_format", "json",
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

// probeFFprobe reads path's streams and format with ffprobe and, with
// scan, its video packets.
func probeFFprobe(ctx context.Context, path, ffprobe string, log *slog.Logger, scan bool) (probeResult, error) {
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
			switch {
			case s.Disposition.AttachedPic != 0:
				// Cover art, or the thumbnail a camera embeds.
				res.CoverArt = true
			case video == nil:
				video = s
			}
		case "audio":
			if !res.HasAudio {
				res.HasAudio, res.AudioCodec = true, s.CodecName
			}
			res.audioCodecs = append(res.audioCodecs, s.CodecName)
		case "subtitle":
			res.Subtitles = append(res.Subtitles, streamOf(s))
		case "data":
			res.Data = append(res.Data, streamOf(s))
		case "attachment":
			res.attachments++
		}
		if tc := lookupTagValue(s.Tags, "timecode"); tc != "" && res.timecode == "" {
			res.timecode = tc
		}
	}
	if tc := lookupTagValue(out.Format.Tags, "timecode"); tc != "" && res.timecode == "" {
		res.timecode = tc
	}
	if video == nil {
		return probeResult{}, fmt.Errorf("%s is not a video file (it has no video stream)", path)
	}
	res.streamIndex = video.Index
	res.Codec, res.PixFmt = video.CodecName, video.PixFmt
	res.CodedWidth, res.CodedHeight = video.Width, video.Height
	res.color = colorTags{space: video.ColorSpace, primaries: video.ColorPrimaries, transfer: video.ColorTransfer}

	// avg_frame_rate is frames over duration; r_frame_rate is the
	// container's base rate and only a fallback. Both are replaced by the
	// packet scan's average below when the frames are unevenly spaced.
	res.FPS = parseProbeRate(video.AvgFrameRate)
	if !res.FPS.Valid() {
		res.FPS = parseProbeRate(video.RFrameRate)
	}

	orient, exact := orientationOf(video)
	if !exact {
		deg, _ := orient.Clockwise()
		log.Warn("the display matrix turns the video by an angle that is not a multiple of 90°; it is written turned by the nearest quarter turn",
			"input", path, "turn", deg)
	}
	res.Orientation = orient
	res.Width, res.Height = orient.Upright(video.Width, video.Height)
	if sar, err := ParseRational(strings.ReplaceAll(video.SampleAspectRatio, ":", "/")); err == nil && sar != (Rational{1, 1}) {
		if orient.Transpose {
			sar = Rational{sar.Den, sar.Num}
		}
		res.SAR = sar
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
		res.Duration = seconds(dur)
	}
	if n, err := strconv.Atoi(video.NbFrames); err == nil && (isMOV(out.Format.FormatName) || out.Format.FormatName == "avi") {
		res.declaredFrames = n
	}
	if d := parseSeconds(video.Duration); d > 0 && isMOV(out.Format.FormatName) {
		res.declaredEnd = seconds(d)
	} else if d, ok := parseClock(lookupTagValue(video.Tags, "DURATION")); ok {
		res.declaredEnd = d
	}

	res.TimeBase, _ = ParseRational(video.TimeBase)
	if video.StartPTS != nil {
		res.startPTS = *video.StartPTS
	}
	res.fileStart = seconds(parseSignedSeconds(out.Format.StartTime))
	if !scan {
		return res, nil
	}

	tl, err := scanPackets(ctx, ffprobe, path, video.Index)
	if err != nil {
		return probeResult{}, err
	}
	tl.tb = res.TimeBase
	if !res.TimeBase.Valid() {
		tl.pts = nil // times in an unknown clock
	}
	res.timeline = tl
	switch {
	case tl.frames == 0:
		return probeResult{}, fmt.Errorf("%s has no video frames", path)
	case tl.pts != nil:
		res.VariableRate = tl.variable()
		if res.VariableRate || !res.FPS.Valid() {
			res.FPS = tl.averageRate()
		}
		if res.VariableRate {
			if gap := tl.minGap(); gap > 0 {
				res.PeakFPS = min(1/(float64(gap)*res.TimeBase.Float()), 2*res.FPS.Float())
			}
		}
		if d := ticks(tl.end, res.TimeBase) - ticks(tl.pts[0], res.TimeBase); d > 0 {
			res.Duration = d
		}
	}
	res.FrameCount, res.FrameCountExact = tl.frames, true
	if !res.FPS.Valid() {
		return probeResult{}, fmt.Errorf("%s has no usable frame rate (ffprobe reports avg_frame_rate %q, r_frame_rate %q)",
			path, video.AvgFrameRate, video.RFrameRate)
	}
	if !res.TimeBase.Valid() {
		res.TimeBase = Rational{1, res.FPS.Num}
	}
	res.PeakFPS = max(res.PeakFPS, res.FPS.Float())
	return res, nil
}

func streamOf(s *ffprobeStream) Stream {
	return Stream{Index: s.Index, Codec: s.CodecName, Tag: s.CodecTag, Language: lookupTagValue(s.Tags, "language")}
}

func lookupTagValue(tags map[string]string, key string) string {
	v, _ := lookupTag(tags, key)
	return v
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

// orientationOf reads the stream's display matrix, or the rotation angle
// or "rotate" tag older ffprobe versions give instead. exact is false for
// a turn that is not a multiple of 90 degrees.
func orientationOf(s *ffprobeStream) (o Orientation, exact bool) {
	for _, sd := range s.SideDataList {
		if m, ok := parseDisplayMatrix(sd.DisplayMatrix); ok {
			return orientationFromMatrix(m)
		}
	}
	for _, sd := range s.SideDataList {
		if sd.Rotation != 0 {
			return orientationFromRotation(sd.Rotation)
		}
	}
	if v, err := strconv.ParseFloat(s.Tags["rotate"], 64); err == nil {
		// The tag turns clockwise, the matrix angle counter-clockwise.
		return orientationFromRotation(-v)
	}
	return Orientation{}, true
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

// parseSeconds parses a non-negative number of seconds; 0 when unusable.
func parseSeconds(s string) float64 {
	f := parseSignedSeconds(s)
	return max(f, 0)
}

func parseSignedSeconds(s string) float64 {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}

func seconds(f float64) time.Duration { return time.Duration(math.Round(f * float64(time.Second))) }

// parseClock parses Matroska's "HH:MM:SS.nnnnnnnnn" duration tags.
func parseClock(s string) (time.Duration, bool) {
	parts := strings.Split(strings.TrimSpace(s), ":")
	if len(parts) != 3 {
		return 0, false
	}
	h, err1 := strconv.Atoi(parts[0])
	m, err2 := strconv.Atoi(parts[1])
	sec, err3 := strconv.ParseFloat(parts[2], 64)
	if err1 != nil || err2 != nil || err3 != nil || h < 0 || m < 0 || sec < 0 {
		return 0, false
	}
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + seconds(sec), true
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
	// OpenCV reports the clockwise turn a player applies.
	orient, _ := orientationFromRotation(-vc.Get(capPropOrientationMeta))
	res := probeResult{Info: Info{
		Path:        path,
		CodedWidth:  int(vc.Get(gocv.VideoCaptureFrameWidth)),
		CodedHeight: int(vc.Get(gocv.VideoCaptureFrameHeight)),
		FPS:         FromFloat(vc.Get(gocv.VideoCaptureFPS)),
		Codec:       strings.ToLower(strings.TrimRight(vc.CodecString(), "\x00 ")),
		Container:   strings.TrimPrefix(strings.ToLower(filepath.Ext(path)), "."),
		Orientation: orient,
		Prober:      "opencv",
	}}
	if res.CodedWidth <= 0 || res.CodedHeight <= 0 {
		return probeResult{}, fmt.Errorf("%s is not a video file (OpenCV finds no video stream)", path)
	}
	res.Width, res.Height = orient.Upright(res.CodedWidth, res.CodedHeight)
	if !res.FPS.Valid() {
		return probeResult{}, fmt.Errorf("%s has no usable frame rate (OpenCV reports %g fps)", path, vc.Get(gocv.VideoCaptureFPS))
	}
	res.TimeBase = Rational{1, res.FPS.Num}
	res.PeakFPS = res.FPS.Float()
	if n := vc.Get(gocv.VideoCaptureFrameCount); n > 0 && !math.IsInf(n, 0) {
		res.FrameCount = int(math.Round(n))
		res.Duration = res.FPS.Duration(res.FrameCount)
	}
	return res, nil
}

// openCapture opens path with OpenCV's FFmpeg backend, the one whose
// behaviour (frame counts, timestamps) this package relies on, falling
// back to whatever backend OpenCV picks. Frames come out as coded: OpenCV
// 4.6 turns portrait videos the wrong way, so Reader turns them itself.
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
	vc.Set(capPropOrientationAuto, 0)
	return vc, nil
}
