// Package synthclip generates the test and demo clip: a textured background
// with people-like figures drawn in the colours the synthetic ONNX models
// (models/synthetic) understand, together with the exact geometry of every
// figure in every frame. End-to-end tests run the whole pipeline on the clip
// and compare the output pixels against that geometry.
package synthclip
