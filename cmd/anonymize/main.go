// Command anonymize takes the faces out of videos of people: it detects
// every person with DETR, finds their keypoints with TransPose and blacks
// out a disk on each face, keeping the video's timing and audio.
package main

import (
	"context"
	"os"
)

func main() {
	// OpenCV's FFmpeg back-end prints libav's decoder complaints ("Invalid
	// NAL unit size") straight to stderr; the program reports a broken
	// stream itself, in one line that says at which frame. Setting the
	// variable yourself brings them back.
	if _, set := os.LookupEnv("OPENCV_FFMPEG_LOGLEVEL"); !set {
		os.Setenv("OPENCV_FFMPEG_LOGLEVEL", "-8") // AV_LOG_QUIET
	}
	ctx, stop := notifyContext(context.Background())
	code := Execute(ctx, NewFactory())
	stop()
	os.Exit(code)
}
