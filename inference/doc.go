// Package inference loads ONNX Runtime and opens model sessions on the
// device the user asked for. Sessions are opened once per run and reused for
// every frame; the packages that own each model (detect, pose) feed them.
package inference
