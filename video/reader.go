package video

import (
	"context"
	"errors"
	"fmt"
	"io"

	"gocv.io/x/gocv"
)

// TruncatedError reports that decoding ended well before the number of
// frames the container declared: the file is damaged or was cut short
// (an interrupted download or copy).
type TruncatedError struct {
	Path     string
	Frame    int // frames decoded before the stream stopped
	Expected int // frames the container declared
}

// Error leaves the path out, like every error from Read: the caller knows
// which file it reads and adds it once.
func (e *TruncatedError) Error() string {
	return fmt.Sprintf("stream is corrupt or truncated: decoding stopped at frame %d of %d", e.Frame, e.Expected)
}

// Reader decodes a video file frame by frame into BGR Mats.
// It is not safe for concurrent use.
type Reader struct {
	info   Info
	vc     *gocv.VideoCapture
	frames int
	end    error // sticky result once the stream has ended
}

// Open probes path and opens it for decoding.
func Open(ctx context.Context, path string) (*Reader, error) {
	info, err := Probe(ctx, path)
	if err != nil {
		return nil, err
	}
	vc, err := openCapture(path)
	if err != nil {
		return nil, fmt.Errorf("OpenCV cannot decode %s (%s video); check that OpenCV was built with FFmpeg support, or convert the file to H.264 first", path, info.Codec)
	}
	// Frames come out at the size OpenCV decodes them, which is what the
	// encoder must be told; it differs from the probe only in odd cases
	// (rotation metadata OpenCV reads differently).
	if w, h := int(vc.Get(gocv.VideoCaptureFrameWidth)), int(vc.Get(gocv.VideoCaptureFrameHeight)); w > 0 && h > 0 {
		info.Width, info.Height = w, h
	}
	return &Reader{info: info, vc: vc}, nil
}

// Info returns what the probe found, with Width and Height as decoded.
func (r *Reader) Info() Info { return r.info }

// Frames returns how many frames Read has returned so far.
func (r *Reader) Frames() int { return r.frames }

// Read decodes the next frame into dst, reusing dst's buffer when it already
// has the right size. It returns io.EOF after the last frame, or a
// *TruncatedError when the stream stopped clearly before the frame count
// the container declared. Once Read returned an error it keeps returning it.
// Its errors do not name the file; the caller adds the path.
func (r *Reader) Read(dst *gocv.Mat) error {
	if r.end != nil {
		return r.end
	}
	if r.vc == nil {
		return errors.New("read from closed video reader")
	}
	if !r.vc.Read(dst) || dst.Empty() {
		r.end = r.endOfStream()
		return r.end
	}
	if dst.Cols() != r.info.Width || dst.Rows() != r.info.Height || dst.Type() != gocv.MatTypeCV8UC3 {
		r.end = fmt.Errorf("frame %d is %dx%d (type %v) but the video is %dx%d BGR; videos that change size midway are not supported",
			r.frames+1, dst.Cols(), dst.Rows(), dst.Type(), r.info.Width, r.info.Height)
		return r.end
	}
	r.frames++
	return nil
}

// endOfStream decides whether running out of frames is the clean end.
func (r *Reader) endOfStream() error {
	want := r.info.FrameCount
	if want > 0 {
		// MP4/MOV sample tables list every frame, so any shortfall is
		// damage; elsewhere the count is a header field or an estimate
		// from the duration, which may be slightly off.
		tolerance := 0
		if !r.info.FrameCountExact {
			tolerance = max(2, want/100)
		}
		if r.frames < want-tolerance {
			return &TruncatedError{Path: r.info.Path, Frame: r.frames, Expected: want}
		}
	}
	if r.frames == 0 {
		return errors.New("no video frames could be decoded; the file is damaged or OpenCV lacks the codec")
	}
	return io.EOF
}

// Close releases the decoder. It is safe to call more than once.
func (r *Reader) Close() error {
	if r.vc != nil {
		r.vc.Close()
		r.vc = nil
	}
	return nil
}
