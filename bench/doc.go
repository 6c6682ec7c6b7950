// Package bench measures the pipeline end to end against its floor: ffmpeg
// decoding and encoding the same clip with the same encoder settings, run
// from the same process. With the null models (near-zero cost, the exact
// contracts) what is left is the pipeline's own work; with real models, the
// whole job.
package bench
