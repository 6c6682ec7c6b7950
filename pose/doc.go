// Package pose estimates 17 COCO keypoints for each detected person with
// TransPose (tph_a4_256x192) exported to ONNX, top-down: one aspect-
// preserving crop per person, batched.
package pose
