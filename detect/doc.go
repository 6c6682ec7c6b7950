// Package detect finds people in a frame with DETR (facebook/detr-resnet-50
// exported to ONNX) and returns their boxes in frame pixels.
package detect
