package testutil

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FrameTimes returns the presentation time of every video frame ffmpeg
// decodes from path (its best-effort timestamp, as ffmpeg itself uses
// when it transcodes), counted from the start of the file as ffmpeg
// counts it: the earliest start of any stream. A frame the decoder gives
// no time (the last of an AVI with B-frames) is placed one frame after
// the previous one, as ffmpeg does.
func FrameTimes(t testing.TB, path string) []time.Duration {
	t.Helper()
	out := ffprobe(t, path, "-select_streams", "v:0",
		"-show_entries", "frame=best_effort_timestamp:stream=time_base:format=start_time", "-of", "compact=p=0:nk=0")
	var tb *big.Rat
	var start *big.Rat
	var raw []int64
	for _, line := range strings.Split(out, "\n") {
		for _, field := range strings.Split(line, "|") {
			k, v, _ := strings.Cut(strings.TrimSpace(field), "=")
			switch k {
			case "time_base":
				r, ok := new(big.Rat).SetString(v)
				if !ok {
					t.Fatalf("%s: time base %q", path, v)
				}
				tb = r
			case "start_time":
				if r, ok := new(big.Rat).SetString(v); ok {
					start = r
				}
			case "best_effort_timestamp":
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					if len(raw) < 2 {
						t.Fatalf("%s: frame %d has no timestamp (%q)", path, len(raw), v)
					}
					n = 2*raw[len(raw)-1] - raw[len(raw)-2]
				}
				raw = append(raw, n)
			}
		}
	}
	if tb == nil {
		t.Fatalf("%s: ffprobe gave no video time base", path)
	}
	if start == nil {
		start = new(big.Rat)
	}
	times := make([]time.Duration, len(raw))
	for i, n := range raw {
		s := new(big.Rat).Mul(new(big.Rat).SetInt64(n), tb)
		s.Sub(s, start)
		s.Mul(s, new(big.Rat).SetInt64(int64(time.Second)))
		f, _ := s.Float64()
		times[i] = time.Duration(math.Round(f))
	}
	return times
}

// StreamTimeBase returns the time base of the first stream of codecType
// ("video", "audio") of path, in seconds per tick.
func StreamTimeBase(t testing.TB, path, codecType string) *big.Rat {
	t.Helper()
	out := ffprobe(t, path, "-select_streams", codecType[:1]+":0", "-show_entries", "stream=time_base", "-of", "csv=p=0")
	r, ok := new(big.Rat).SetString(strings.TrimSpace(out))
	if !ok {
		t.Fatalf("%s: %s time base %q", path, codecType, out)
	}
	return r
}

// StreamSpan returns when the first stream of codecType of path starts
// and ends, counted from the start of the file.
func StreamSpan(t testing.TB, path, codecType string) (start, end time.Duration) {
	t.Helper()
	out := ffprobe(t, path, "-select_streams", codecType[:1]+":0",
		"-show_entries", "stream=start_time,duration:format=start_time", "-of", "compact=p=1:nk=0")
	vals := map[string]float64{}
	for _, line := range strings.Split(out, "\n") {
		section, rest, _ := strings.Cut(strings.TrimSpace(line), "|")
		for _, field := range strings.Split(rest, "|") {
			k, v, _ := strings.Cut(field, "=")
			if x, err := strconv.ParseFloat(v, 64); err == nil {
				vals[section+"."+k] = x
			}
		}
	}
	s, okS := vals["stream.start_time"]
	d, okD := vals["stream.duration"]
	if !okS || !okD {
		t.Fatalf("%s: no %s stream start and duration in:\n%s", path, codecType, out)
	}
	f := vals["format.start_time"]
	sec := func(x float64) time.Duration { return time.Duration(math.Round(x * float64(time.Second))) }
	return sec(s - f), sec(s - f + d)
}

// AudioAt returns d of the first audio stream of path from time at
// (counted like FrameTimes) as 16-bit mono samples at 48 kHz: what is
// heard while a given frame shows. Tests compare it between an input and
// its output to check that picture and sound stay in step. The stream is
// decoded from its start (a decoder that starts after a seek gets its
// first samples wrong) and placed at the time of its first decoded frame
// (decoders skip the priming samples some codecs begin with).
func AudioAt(t testing.TB, path string, at, d time.Duration) []int16 {
	t.Helper()
	out := ffprobe(t, path, "-select_streams", "a:0", "-read_intervals", "%+#1",
		"-show_entries", "frame=best_effort_timestamp_time:format=start_time", "-of", "compact=p=1:nk=0")
	var streamStart, fileStart float64
	for _, line := range strings.Split(out, "\n") {
		section, rest, _ := strings.Cut(strings.TrimSpace(line), "|")
		_, v, _ := strings.Cut(rest, "=")
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			continue
		}
		if section == "frame" {
			streamStart = x
		} else {
			fileStart = x
		}
	}
	const rate = 48000
	cmd := exec.Command(Tool(t, "ffmpeg"), "-v", "error", "-i", "file:"+path, "-map", "0:a:0",
		"-ac", "1", "-ar", strconv.Itoa(rate), "-f", "s16le", "pipe:1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffmpeg decode audio of %s: %v\n%s", path, err, stderr.String())
	}
	from := int(math.Round((at.Seconds() - (streamStart - fileStart)) * rate))
	n := int(math.Round(d.Seconds() * rate))
	total := len(raw) / 2
	from = max(from, 0)
	to := min(from+n, total)
	if from >= to {
		return nil
	}
	samples := make([]int16, to-from)
	for i := range samples {
		samples[i] = int16(binary.LittleEndian.Uint16(raw[2*(from+i):]))
	}
	return samples
}

// CheckInStep checks that what is heard while the first and the last
// frame of out show is what is heard then in the input in: picture and
// sound are in step, at the start and after every gap, within a
// millisecond. Where a codec's priming meets a container's rules the
// sound may sit a few milliseconds off in ffmpeg's own remux of the input
// into out's container too (video copied, audio with acodec, "copy" or an
// encoder): that much is allowed.
func CheckInStep(t testing.TB, in, out, acodec string) {
	t.Helper()
	inTimes, outTimes := FrameTimes(t, in), FrameTimes(t, out)
	var refTimes []time.Duration
	ref := filepath.Join(t.TempDir(), "ref"+filepath.Ext(out))
	for _, i := range []int{0, len(inTimes) - 1} {
		lag, ok := AudioLag(t, in, inTimes[i], out, outTimes[i], i > 0)
		if !ok {
			t.Errorf("at frame %d the input's sound is not heard in the output", i)
			continue
		}
		if lag <= time.Millisecond && lag >= -time.Millisecond {
			continue
		}
		if refTimes == nil {
			cmd := exec.Command(Tool(t, "ffmpeg"), "-v", "error", "-i", "file:"+in, "-map", "0:v:0", "-map", "0:a:0",
				"-c:v", "copy", "-c:a", acodec, "file:"+ref)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("ffmpeg remux %s: %v\n%s", in, err, b)
			}
			refTimes = FrameTimes(t, ref)
		}
		refLag, ok := AudioLag(t, in, inTimes[i], ref, refTimes[i], i > 0)
		if d := lag - refLag; !ok || d > time.Millisecond || d < -time.Millisecond {
			t.Errorf("at frame %d the sound is %v off the input's (ffmpeg's own remux: %v, found: %v)", i, lag, refLag, ok)
		}
	}
}

// AudioLag returns by how much the sound of b around bAt lags behind
// that of a around aAt: the best match, within ±40 ms, of 30 ms of a's
// sound (after aAt, or before it for a frame near the end); ok is false
// when nothing matches (no audio, or another one). The clips' sound is
// white noise, so only the right instant matches.
func AudioLag(t testing.TB, a string, aAt time.Duration, b string, bAt time.Duration, last bool) (lag time.Duration, ok bool) {
	t.Helper()
	const rate = 48000
	const window = 30 * time.Millisecond
	const search = 40 * time.Millisecond
	if last {
		aAt, bAt = aAt-window, bAt-window
	}
	ref := AudioAt(t, a, aAt, window)
	pre := min(bAt, search)
	got := AudioAt(t, b, bAt-pre, pre+window+search)
	n := int(window.Seconds() * rate)
	if len(ref) < n*9/10 {
		t.Fatalf("%s: only %d samples of sound at %v", a, len(ref), aAt)
	}
	n = len(ref)
	zero := int(pre.Seconds() * rate)
	best, bestScore := 0, -1.0
	for lag := -zero; zero+lag+n <= len(got); lag++ {
		if lag > int(search.Seconds()*rate) {
			break
		}
		var dot, na, nb float64
		for i := range n {
			x, y := float64(ref[i]), float64(got[zero+lag+i])
			dot += x * y
			na += x * x
			nb += y * y
		}
		if na == 0 || nb == 0 {
			continue
		}
		if score := dot / math.Sqrt(na*nb); score > bestScore {
			best, bestScore = lag, score
		}
	}
	// Audio re-encoded for the output container (Vorbis into MP4) keeps a
	// correlation near 0.9 with white noise; a wrong instant gives near 0.
	if bestScore < 0.7 {
		t.Logf("the sound of %s at %v is not found in %s near %v (best correlation %.2f)", a, aAt, b, bAt, bestScore)
		return 0, false
	}
	return time.Duration(best) * time.Second / rate, true
}

// DecodeBGR decodes every frame of path with ffmpeg, turned upright as
// ffmpeg turns phone videos (its default autorotation), into BGR bytes.
func DecodeBGR(t testing.TB, path string) (w, h int, frames [][]byte) {
	t.Helper()
	size := ffprobe(t, path, "-select_streams", "v:0", "-show_entries", "stream=width,height:stream_side_data=rotation", "-of", "compact=p=0:nk=0")
	rotation := 0.0
	for _, field := range strings.FieldsFunc(size, func(r rune) bool { return r == '|' || r == '\n' }) {
		k, v, _ := strings.Cut(strings.TrimSpace(field), "=")
		switch k {
		case "width":
			w, _ = strconv.Atoi(v)
		case "height":
			h, _ = strconv.Atoi(v)
		case "rotation":
			rotation, _ = strconv.ParseFloat(v, 64)
		}
	}
	if w <= 0 || h <= 0 {
		t.Fatalf("%s: size in %q", path, size)
	}
	// ffmpeg turns quarter turns upright, swapping the size.
	if r := math.Mod(math.Abs(rotation), 180); r > 45 && r < 135 {
		w, h = h, w
	}
	cmd := exec.Command(Tool(t, "ffmpeg"), "-v", "error", "-i", "file:"+path, "-map", "0:v:0",
		"-f", "rawvideo", "-pix_fmt", "bgr24", "-fps_mode", "passthrough", "pipe:1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffmpeg decode %s: %v\n%s", path, err, stderr.String())
	}
	n := w * h * 3
	if len(raw)%n != 0 {
		t.Fatalf("ffmpeg decoded %d bytes of %dx%d frames", len(raw), w, h)
	}
	for i := 0; i < len(raw); i += n {
		frames = append(frames, raw[i:i+n])
	}
	return w, h, frames
}

// MeanAbsDiff is the mean absolute difference of two equally long byte
// slices (pixels).
func MeanAbsDiff(a, b []byte) float64 {
	var sum int64
	for i := range a {
		d := int64(a[i]) - int64(b[i])
		if d < 0 {
			d = -d
		}
		sum += d
	}
	return float64(sum) / float64(len(a))
}

func ffprobe(t testing.TB, path string, args ...string) string {
	t.Helper()
	cmd := exec.Command(Tool(t, "ffprobe"), append(append([]string{"-v", "error"}, args...), "file:"+path)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", path, err, stderr.String())
	}
	return string(out)
}

// SetDisplayMatrix rewrites, in place, the display matrix of the video
// track of the MP4 or MOV file at path: nine numbers a b u c d v x y w,
// a b c d x y in 16.16 fixed point, u v w in 2.30, as ISO/IEC 14496-12
// stores them. It lets tests make the matrices phones write (an iPhone's
// portrait matrix has a translation) and mirrored ones, which ffmpeg
// cannot write.
func SetDisplayMatrix(t testing.TB, path string, m [9]int32) {
	t.Helper()
	editVideoTrack(t, path, "tkhd", func(box []byte) {
		// version+flags, then times, track id, reserved, duration,
		// reserved, layer, group, volume, reserved: 32 or 44 bytes.
		off := 4 + 4 + 4 + 4 + 4 + 4 + 8 + 2 + 2 + 2 + 2
		if box[0] == 1 {
			off += 12
		}
		for i, v := range m {
			binary.BigEndian.PutUint32(box[off+4*i:], uint32(v))
		}
	})
}

// ShortenEditList shortens, in place, the first edit of the video track
// of the MP4 file at path by d, in the movie's time scale: frames shown
// after the edit's new end are then discarded by every player, while the
// sample table still lists them.
func ShortenEditList(t testing.TB, path string, d time.Duration) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	mvhd := findBox(t, data, "moov", "mvhd")
	scale := binary.BigEndian.Uint32(mvhd[12:])
	if mvhd[0] == 1 {
		scale = binary.BigEndian.Uint32(mvhd[20:])
	}
	editVideoTrack(t, path, "elst", func(box []byte) {
		by := uint64(d.Seconds()*float64(scale) + 0.5)
		if box[0] == 1 {
			v := binary.BigEndian.Uint64(box[8:])
			binary.BigEndian.PutUint64(box[8:], v-by)
			return
		}
		v := binary.BigEndian.Uint32(box[8:])
		binary.BigEndian.PutUint32(box[8:], v-uint32(by))
	})
}

// editVideoTrack calls edit with the payload (after size and type) of the
// named box inside the video trak of the MP4 at path, then writes the
// file back.
func editVideoTrack(t testing.TB, path, name string, edit func(box []byte)) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	moov := findBox(t, data, "moov")
	found := false
	eachBox(moov, func(typ string, trak []byte) {
		if typ != "trak" || found {
			return
		}
		hdlr := findBoxOK(trak, "mdia", "hdlr")
		if hdlr == nil || string(hdlr[8:12]) != "vide" {
			return
		}
		var box []byte
		if name == "elst" {
			box = findBoxOK(trak, "edts", "elst")
		} else {
			box = findBoxOK(trak, name)
		}
		if box == nil {
			t.Fatalf("%s: the video track has no %s box", path, name)
		}
		edit(box)
		found = true
	})
	if !found {
		t.Fatalf("%s: no video track", path)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// findBox returns the payload of the box at the end of the path of box
// types, failing the test when there is none.
func findBox(t testing.TB, data []byte, path ...string) []byte {
	t.Helper()
	b := findBoxOK(data, path...)
	if b == nil {
		t.Fatalf("no %s box", strings.Join(path, "/"))
	}
	return b
}

func findBoxOK(data []byte, path ...string) []byte {
	cur := data
	for _, name := range path {
		var next []byte
		eachBox(cur, func(typ string, payload []byte) {
			if next == nil && typ == name {
				next = payload
			}
		})
		if next == nil {
			return nil
		}
		cur = next
	}
	return cur
}

// eachBox calls f with the type and payload of each box in data; the
// payloads share data's memory.
func eachBox(data []byte, f func(typ string, payload []byte)) {
	for len(data) >= 8 {
		size := uint64(binary.BigEndian.Uint32(data))
		typ := string(data[4:8])
		head := uint64(8)
		switch size {
		case 1:
			if len(data) < 16 {
				return
			}
			size, head = binary.BigEndian.Uint64(data[8:]), 16
		case 0:
			size = uint64(len(data))
		}
		if size < head || size > uint64(len(data)) {
			return
		}
		f(typ, data[head:size])
		data = data[size:]
	}
}
