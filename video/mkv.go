package video

import (
	"encoding/binary"
	"io"
	"time"
)

// mkvWriter streams raw frames with their presentation times as a
// Matroska file, which is how frames reach ffmpeg: a raw video pipe has no
// timestamps, so ffmpeg would space the frames evenly, and a variable-rate
// video would drift away from its audio.
//
// The file is the least ffmpeg's demuxer needs: an EBML header, a Segment
// of unknown size (it is a stream), nanosecond timestamps, one track of
// V_UNCOMPRESSED video whose ColourSpace FourCC says BGR24 or I420, then one
// Cluster per frame holding one SimpleBlock. A cluster per frame keeps
// every timestamp absolute, so no frame is limited by SimpleBlock's
// 16-bit relative time.
type mkvWriter struct {
	w    io.Writer
	head []byte // scratch for element headers
}

// Matroska element IDs, from the Matroska specification (RFC 9559).
const (
	mkvEBML               = 0x1A45DFA3
	mkvEBMLVersion        = 0x4286
	mkvEBMLReadVersion    = 0x42F7
	mkvEBMLMaxIDLength    = 0x42F2
	mkvEBMLMaxSizeLength  = 0x42F3
	mkvDocType            = 0x4282
	mkvDocTypeVersion     = 0x4287
	mkvDocTypeReadVersion = 0x4285
	mkvSegment            = 0x18538067
	mkvInfo               = 0x1549A966
	mkvTimestampScale     = 0x2AD7B1
	mkvMuxingApp          = 0x4D80
	mkvWritingApp         = 0x5741
	mkvTracks             = 0x1654AE6B
	mkvTrackEntry         = 0xAE
	mkvTrackNumber        = 0xD7
	mkvTrackUID           = 0x73C5
	mkvTrackType          = 0x83
	mkvFlagLacing         = 0x9C
	mkvCodecID            = 0x86
	mkvDefaultDuration    = 0x23E383
	mkvVideo              = 0xE0
	mkvPixelWidth         = 0xB0
	mkvPixelHeight        = 0xBA
	mkvColourSpace        = 0x2EB524
	mkvCluster            = 0x1F43B675
	mkvTimestamp          = 0xE7
	mkvSimpleBlock        = 0xA3
)

// mkvUnknownSize is the 8-byte size that marks an element whose end is the
// end of the stream.
var mkvUnknownSize = []byte{0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}

// Pixel formats of the frames, as V_UNCOMPRESSED's ColourSpace FourCC
// (ffmpeg reads them as bgr24 and yuv420p).
var (
	mkvBGR24 = [4]byte{'B', 'G', 'R', 24}
	mkvI420  = [4]byte{'I', '4', '2', '0'}
)

// newMKVWriter writes the header for w×h frames in the given pixel format
// (mkvBGR24, mkvI420). frameDuration, when
// positive, is the nominal time between frames; ffmpeg takes the stream's
// frame rate from it (x264 uses that rate for rate control), while each
// frame keeps its own timestamp.
func newMKVWriter(w io.Writer, width, height int, frameDuration time.Duration, pixels [4]byte) (*mkvWriter, error) {
	m := &mkvWriter{w: w}
	ebml := concat(
		uintElement(mkvEBMLVersion, 1), uintElement(mkvEBMLReadVersion, 1),
		uintElement(mkvEBMLMaxIDLength, 4), uintElement(mkvEBMLMaxSizeLength, 8),
		element(mkvDocType, []byte("matroska")),
		uintElement(mkvDocTypeVersion, 4), uintElement(mkvDocTypeReadVersion, 2),
	)
	track := concat(
		uintElement(mkvTrackNumber, 1), uintElement(mkvTrackUID, 1),
		uintElement(mkvTrackType, 1), uintElement(mkvFlagLacing, 0),
		element(mkvCodecID, []byte("V_UNCOMPRESSED")),
	)
	if frameDuration > 0 {
		track = append(track, uintElement(mkvDefaultDuration, uint64(frameDuration))...)
	}
	track = append(track, element(mkvVideo, concat(
		uintElement(mkvPixelWidth, uint64(width)), uintElement(mkvPixelHeight, uint64(height)),
		element(mkvColourSpace, pixels[:]),
	))...)
	head := concat(
		element(mkvEBML, ebml),
		elementID(mkvSegment), mkvUnknownSize,
		element(mkvInfo, concat(
			uintElement(mkvTimestampScale, 1), // nanoseconds
			element(mkvMuxingApp, []byte("anonymize")), element(mkvWritingApp, []byte("anonymize")),
		)),
		element(mkvTracks, element(mkvTrackEntry, track)),
	)
	_, err := w.Write(head)
	return m, err
}

// writeFrame writes one frame shown at pts (not negative, increasing).
// The pixels are written straight from frame, without a copy.
func (m *mkvWriter) writeFrame(frame []byte, pts time.Duration) error {
	// SimpleBlock: track number 1, relative time 0, flags: keyframe.
	blockHead := []byte{0x81, 0, 0, 0x80}
	blockSize := uint64(len(blockHead) + len(frame))
	ts := uintElement(mkvTimestamp, uint64(pts))
	simple := append(elementID(mkvSimpleBlock), sizeVint(blockSize)...)
	clusterSize := uint64(len(ts)+len(simple)) + blockSize

	h := append(m.head[:0], elementID(mkvCluster)...)
	h = append(h, sizeVint(clusterSize)...)
	h = append(h, ts...)
	h = append(h, simple...)
	h = append(h, blockHead...)
	m.head = h
	if _, err := m.w.Write(h); err != nil {
		return err
	}
	_, err := m.w.Write(frame)
	return err
}

func concat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// elementID encodes an ID, whose length marker is part of its value.
func elementID(id uint32) []byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], id)
	switch {
	case id >= 1<<24:
		return b[:]
	case id >= 1<<16:
		return b[1:]
	case id >= 1<<8:
		return b[2:]
	}
	return b[3:]
}

// sizeVint encodes an element size as an EBML variable-length integer in
// the fewest bytes; the all-ones value of each length is reserved for
// "unknown".
func sizeVint(n uint64) []byte {
	for l := 1; l <= 8; l++ {
		if n < 1<<(7*l)-1 {
			b := make([]byte, l)
			v := n | 1<<(7*l)
			for i := l - 1; i >= 0; i-- {
				b[i] = byte(v)
				v >>= 8
			}
			return b
		}
	}
	panic("mkv: element too large")
}

func element(id uint32, data []byte) []byte {
	return concat(elementID(id), sizeVint(uint64(len(data))), data)
}

// uintElement is an unsigned integer element in the fewest bytes.
func uintElement(id uint32, v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	i := 0
	for i < 7 && b[i] == 0 {
		i++
	}
	return element(id, b[i:])
}
