// Package video reads, probes and writes the video files anonymize works on.
//
// Decoding goes through OpenCV (gocv) so frames arrive as BGR Mats ready for
// the detectors, turned upright as players show them (phone videos store
// portrait frames turned, with a display matrix), each with its own
// presentation time (variable frame rates are common in phone and screen
// recordings). ffprobe reads the streams and lists the video's packets
// first: their count and times are what the decoder must return, which
// tells a file cut short from one whose container states no frame count.
//
// Encoding pipes the frames with their times into an ffmpeg subprocess (as
// Matroska: a raw video pipe has no timestamps), which writes H.264 in the
// source's clock and copies the audio, subtitles and timecode; it falls
// back to OpenCV's own writer when ffmpeg is not installed. Outputs are
// written to a hidden, locked temporary file beside the destination and
// renamed into place only once the encode succeeded, so an interrupted run
// never leaves a half-written video behind, and a killed run's leftover is
// removed by the next run on the same output.
package video
