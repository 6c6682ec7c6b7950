package video

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"time"

	"gocv.io/x/gocv"
)

// TruncatedError reports that the video stream ends well before what the
// container promised: the file is damaged or was cut short (an interrupted
// download or copy).
type TruncatedError struct {
	Path string
	// Frame is where the stream ends: frames decoded, or, when the probe
	// already saw the file end early (Early), frames the file holds.
	Frame    int
	Expected int  // frames the container declared
	Approx   bool // Expected is estimated from the declared duration
	Early    bool // found before decoding, from the file's index and packets
}

// Error leaves the path out, like every error from Read: the caller knows
// which file it reads and adds it once.
func (e *TruncatedError) Error() string {
	of := fmt.Sprint(e.Expected)
	if e.Approx {
		of = "about " + of
	}
	if e.Early {
		return fmt.Sprintf("stream is corrupt or truncated: the file ends at frame %d of %s", e.Frame, of)
	}
	return fmt.Sprintf("stream is corrupt or truncated: decoding stopped at frame %d of %s", e.Frame, of)
}

// Reader decodes a video file frame by frame into upright BGR Mats, each
// with its presentation time. It is not safe for concurrent use.
type Reader struct {
	src    probeResult
	info   Info
	log    *slog.Logger
	vc     *gocv.VideoCapture
	coded  gocv.Mat // the frame as decoded, before it is turned upright
	frames int
	end    error // sticky result once the stream has ended

	// Timestamps, in ticks of info.TimeBase.
	prev     int64 // the previous frame's time
	step     int64 // the nominal time between frames
	repaired int   // frames whose time came from the packets, not the decoder
}

// Open probes path and opens it for decoding. Warnings about the file go
// to log, which may be nil.
func Open(ctx context.Context, path string, log *slog.Logger) (*Reader, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	src, err := probeFile(ctx, path, log)
	if err != nil {
		return nil, err
	}
	if err := src.checkComplete(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	vc, err := openCapture(path)
	if err != nil {
		return nil, fmt.Errorf("OpenCV cannot decode %s (%s video); check that OpenCV was built with FFmpeg support, or convert the file to H.264 first", path, src.Codec)
	}
	r := &Reader{src: src, info: src.Info, log: log, vc: vc}
	// Frames come out at the size OpenCV decodes them, which is what the
	// encoder must be told; it differs from the probe only in odd cases.
	if w, h := int(vc.Get(gocv.VideoCaptureFrameWidth)), int(vc.Get(gocv.VideoCaptureFrameHeight)); w > 0 && h > 0 {
		r.info.CodedWidth, r.info.CodedHeight = w, h
		r.info.Width, r.info.Height = r.info.Orientation.Upright(w, h)
	}
	if !r.info.Orientation.IsIdentity() {
		r.coded = gocv.NewMat()
	}
	tb := r.info.TimeBase
	r.step = max(1, int64(math.Round(float64(tb.Den)*float64(r.info.FPS.Den)/(float64(tb.Num)*float64(r.info.FPS.Num)))))
	return r, nil
}

// checkComplete fails for a file whose packets end well before what its
// index or header promises: it was cut short, and decoding it would only
// find out at the end.
func (p *probeResult) checkComplete() error {
	tl := p.timeline
	if tl == nil {
		return nil
	}
	if p.declaredFrames > 0 && tl.packets < p.declaredFrames {
		return &TruncatedError{Path: p.Path, Frame: tl.frames, Expected: p.declaredFrames - (tl.packets - tl.frames), Early: true}
	}
	if p.declaredEnd <= 0 || tl.pts == nil {
		return nil
	}
	end := max(ticks(tl.end, p.TimeBase)-p.fileStart, ticks(tl.end-tl.pts[0], p.TimeBase))
	frame := p.FPS.Duration(1)
	// ffprobe complains when a file ends inside an element; without the
	// complaint the cut may have fallen between frames, so only a clear
	// gap counts.
	slack := max(2*frame, 500*time.Millisecond)
	if tl.problem != "" {
		slack = 2 * frame
	}
	if end >= p.declaredEnd-slack {
		return nil
	}
	missing := int(math.Round((p.declaredEnd - end).Seconds() * p.FPS.Float()))
	return &TruncatedError{Path: p.Path, Frame: tl.frames, Expected: tl.frames + missing, Approx: true, Early: true}
}

// Info returns what the probe found, with the size as decoded.
func (r *Reader) Info() Info { return r.info }

// Frames returns how many frames Read has returned so far.
func (r *Reader) Frames() int { return r.frames }

// End returns the time at which the first n frames have all been shown
// (the next frame's time, or the end of the last one), counted like Read's
// timestamps; 0 when unknown. The audio of a run limited to n frames is
// cut there.
func (r *Reader) End(n int) time.Duration {
	tl := r.src.timeline
	tb := r.info.TimeBase
	switch {
	case n <= 0:
		return 0
	case tl != nil && tl.pts != nil && n < len(tl.pts):
		return ticks(tl.pts[n], tb) - r.src.fileStart
	case tl != nil && tl.pts != nil:
		return ticks(tl.end, tb) - r.src.fileStart
	}
	return ticks(r.src.startPTS, tb) - r.src.fileStart + r.info.FPS.Duration(n)
}

// Read decodes the next frame into dst, reusing dst's buffer when it
// already has the right size, and returns its presentation time counted
// from the start of the file (the earliest start of any of its streams,
// as ffmpeg counts): the time every player shows the frame at, kept for
// variable-rate video too. Read returns io.EOF after the last frame, or a
// *TruncatedError when the stream stopped before its last frame. Once
// Read returned an error it keeps returning it. Its errors do not name
// the file; the caller adds the path.
func (r *Reader) Read(dst *gocv.Mat) (time.Duration, error) {
	if r.end != nil {
		return 0, r.end
	}
	if r.vc == nil {
		return 0, errors.New("read from closed video reader")
	}
	if !r.decode(dst) {
		r.end = r.endOfStream()
		return 0, r.end
	}
	if dst.Cols() != r.info.Width || dst.Rows() != r.info.Height || dst.Type() != gocv.MatTypeCV8UC3 {
		r.end = fmt.Errorf("frame %d is %dx%d (type %v) but the video is %dx%d BGR; videos that change size midway are not supported",
			r.frames+1, dst.Cols(), dst.Rows(), dst.Type(), r.info.Width, r.info.Height)
		return 0, r.end
	}
	pts := r.stamp(r.vc.Get(gocv.VideoCapturePosMsec))
	r.frames++
	return pts, nil
}

// decode reads the next frame into dst, upright.
func (r *Reader) decode(dst *gocv.Mat) bool {
	if r.info.Orientation.IsIdentity() {
		return r.vc.Read(dst) && !dst.Empty()
	}
	if !r.vc.Read(&r.coded) || r.coded.Empty() {
		return false
	}
	r.info.Orientation.apply(r.coded, dst)
	return true
}

// stamp turns OpenCV's position of the frame just decoded, in milliseconds
// from the stream's first timestamp, into the frame's presentation time.
//
// OpenCV 4.6 reports the decoder's best-effort timestamp, except that it
// reports the packet's decoding time for a frame shown at exactly 0, and
// 0 for the frames a decoder holds back for reordering and returns only
// at the end of the stream. So a position is taken only when it moves
// forward and, where the packets give every frame's time, is one of
// them; otherwise the frame gets the next time the packets list (or,
// without them, the previous frame's time plus one frame).
func (r *Reader) stamp(ms float64) time.Duration {
	tb := r.info.TimeBase
	tl := r.src.timeline
	exact := tl != nil && tl.pts != nil
	t := r.src.startPTS + int64(math.Round(ms*float64(tb.Den)/(1000*float64(tb.Num))))
	ok := !math.IsNaN(ms) && !math.IsInf(ms, 0) && (r.frames == 0 || t > r.prev)
	if ok && exact {
		ok = tl.contains(t)
	}
	if !ok {
		r.repaired++
		next, found := int64(0), false
		switch {
		case exact && r.frames == 0:
			next, found = tl.pts[0], true
		case exact:
			next, found = tl.next(r.prev)
		case r.frames == 0:
			next, found = r.src.startPTS, true
		}
		if !found {
			next = r.prev + r.step
		}
		t = next
	}
	r.prev = t
	return ticks(t, tb) - r.src.fileStart
}

// endOfStream decides whether running out of frames is the clean end.
func (r *Reader) endOfStream() error {
	if r.frames == 0 {
		return errors.New("no video frames could be decoded; the file is damaged or OpenCV lacks the codec")
	}
	if r.repaired > 1 {
		r.log.Debug("frame times taken from the packets where the decoder gave none", "frames", r.repaired)
	}
	tl := r.src.timeline
	if tl == nil {
		return r.endByCount()
	}
	stoppedEarly := false
	if tl.pts != nil {
		// Decoding must have reached the last frame the packets hold.
		stoppedEarly = r.prev < tl.pts[len(tl.pts)-1]
	} else {
		stoppedEarly = r.frames < tl.frames-max(2, tl.frames/100)
	}
	if stoppedEarly {
		return &TruncatedError{Path: r.info.Path, Frame: r.frames, Expected: tl.frames}
	}
	if missing := tl.frames - r.frames; missing > 0 {
		r.log.Warn("some frames could not be decoded and are missing from the output (the others keep their times)",
			"input", r.info.Path, "missing", missing, "of", tl.frames)
	}
	return io.EOF
}

// endByCount is the end-of-stream decision without a packet scan (no
// ffprobe): against the count OpenCV reads from the header or estimates.
func (r *Reader) endByCount() error {
	want := r.info.FrameCount
	if want > 0 && r.frames < want-max(2, want/100) {
		return &TruncatedError{Path: r.info.Path, Frame: r.frames, Expected: want}
	}
	return io.EOF
}

// Close releases the decoder. It is safe to call more than once.
func (r *Reader) Close() error {
	if r.vc != nil {
		r.vc.Close()
		r.vc = nil
		if !r.info.Orientation.IsIdentity() {
			r.coded.Close()
		}
	}
	return nil
}
