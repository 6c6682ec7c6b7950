package main

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/anonymize-dev/anonymize/pipeline"
)

// addRuntimeFlags adds the flags that choose the runtime and the models:
// shared by every command that loads them.
func addRuntimeFlags(fs *pflag.FlagSet, c *pipeline.Config, loc *Locations) {
	fs.Var(&c.Device, "device", "where models run: auto (CUDA if usable, else CPU), cpu, cuda or cuda:N, tensorrt or tensorrt:N (fp16 engines, cached; falls back to CUDA, then the CPU)")
	fs.StringVar(&c.TRTCache, "trt-cache", c.TRTCache, "folder for TensorRT's engines and timing caches (default: anonymize/tensorrt in the user cache folder); building DETR's engine takes minutes, loading it seconds")
	fs.StringVar(&loc.ORTLib, "ort-lib", loc.ORTLib, "path of libonnxruntime.so (default: $ANONYMIZE_ORT_LIB, lib/ next to the binary, then the system library path)")
	fs.StringVar(&loc.ModelsDir, "models-dir", loc.ModelsDir, "model folder (default: $ANONYMIZE_MODELS, ./models, then the user cache folder)")
	fs.StringVar(&c.DetectorModel, "detector-model", c.DetectorModel, "DETR person detector .onnx file (overrides the model folder)")
	fs.StringVar(&c.PoseModel, "pose-model", c.PoseModel, "TransPose keypoint model .onnx file (overrides the model folder)")
}

// addPipelineFlags adds the flags of one anonymization job: shared by
// `video` and `batch`.
func addPipelineFlags(fs *pflag.FlagSet, c *pipeline.Config, loc *Locations) {
	addRuntimeFlags(fs, c, loc)
	fs.Float64Var(&c.Threshold, "threshold", c.Threshold, "minimum person score of the detector")
	fs.Float64Var(&c.TrackLow, "track-low", c.TrackLow, "score from which a detection below --threshold still continues a person's track (as ByteTrack does); it never starts one")
	fs.DurationVar(&c.Hold, "hold", c.Hold, "how long a tracked person the detector misses keeps a mask where they are predicted to be, and how far back a person first detected late is masked too (0: off)")
	fs.IntVar(&c.PersonClass, "person-class", c.PersonClass, "index of the person class in the detector's class head, for a model not trained on COCO's 92-class label set (0: COCO, where person is 1)")
	fs.IntVar(&c.DetectSize, "detect-size", c.DetectSize, "short side of the detector input in pixels (the long side is capped at 1333/800 of it)")
	fs.Var(&c.Preprocess, "preprocess", "where the detector's input is resized and normalised: cpu (in Go), fused (inside the detector model, on its device: "+
		"frames go to the GPU as bytes; made once per model and kept in the user cache folder) or auto (fused on a GPU, cpu on the CPU, where the fused graph is slow)")
	fs.IntVar(&c.Batch, "batch", c.Batch, fmt.Sprintf("frames per person-detector run (0: %d on a GPU, 1 on the CPU, where batches gain nothing); "+
		"the detector holds 3 inputs of this many frames (12 MB a frame at the default --detect-size) and the next batch is prepared while one runs", pipeline.DefaultGPUBatch))
	fs.IntVar(&c.PoseBatch, "pose-batch", c.PoseBatch, "most people sent through the pose model at once (lower it if the GPU runs out of memory on crowds); on a GPU batches are padded to 1, 2, 4, 8, ... crops so the model sees few input shapes")
	fs.Float64Var(&c.KptThreshold, "kpt-threshold", c.KptThreshold, "minimum keypoint confidence; below it the mask falls back to eyes and ears, then to the head region of the box")
	fs.Float64Var(&c.MaskScale, "mask-scale", c.MaskScale, "multiplies the mask radius (the larger nose-to-shoulder distance)")
	fs.IntVar(&c.CRF, "crf", c.CRF, "x264 constant rate factor, 1 (best) to 51: 18 is visually lossless, 23 is x264's default")
	fs.Var(&c.Preset, "preset", "x264 speed preset (ultrafast ... veryslow); NVENC gets the matching p1 ... p7")
	fs.Var(&c.Encoder, "encoder", "video encoder: auto (NVENC H.264 where this machine's GPU and ffmpeg can, else libx264: H100 and H200 have no NVENC), libx264, h264_nvenc or hevc_nvenc")
	fs.IntVar(&c.EncoderThreads, "encoder-threads", c.EncoderThreads, "threads libx264 may use (0: its own choice, about 1.5 per core); lower it when other jobs share the machine")
	fs.Var(&c.Audio, "audio", "audio of the input: copy or drop")
	fs.Var(&c.Subtitles, "subtitles", "subtitles of the input: copy (where the output container can hold them) or drop")
	fs.IntVar(&c.Frames, "frames", c.Frames, "process only the first N frames (0: all)")
	fs.BoolVar(&c.Draw, "draw", c.Draw, "also draw boxes and skeletons (debugging; the output still has the masks)")
	fs.Var(&c.Audit, "audit", "search the output frames for faces with an independent detector (BlazeFace): "+
		"off, sample (one frame in --audit-every, and where a person comes into view or is lost) or full (every frame). "+
		"sample is the default: at 1080p a frame's audit costs about 0.14 s on 2 CPU cores, more than twice the pipeline's "+
		"own work on a frame (decode, masks, encode), so full would make a run whose models are fast (a GPU's) about 3.5 times slower; "+
		"the sample costs about 2%")
	fs.IntVar(&c.AuditEvery, "audit-every", c.AuditEvery, "the audit sample's interval, in frames")
	fs.StringVar(&loc.AuditModel, "audit-model", loc.AuditModel, "the audit's BlazeFace .onnx file (default: blazeface-back-256.onnx in the model folder)")
	fs.StringVar(&c.AuditEvidence, "audit-evidence", c.AuditEvidence, "write a crop of each face the audit finds into this folder (personal data: off by default)")
}
