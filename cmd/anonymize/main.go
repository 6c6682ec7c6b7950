// Command anonymize takes the faces out of videos of people: it detects
// every person with DETR, finds their keypoints with TransPose and blacks
// out a disk on each face, keeping the video's timing and audio.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Execute(ctx, NewFactory())
	stop()
	os.Exit(code)
}
