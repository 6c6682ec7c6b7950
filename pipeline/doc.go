// Package pipeline turns an input video into an anonymized one: it loads
// the models once (Engine), then runs decode, inference and mask+encode as
// concurrent stages for each video (ProcessVideo, RunStages).
package pipeline
