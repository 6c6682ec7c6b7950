// Package testutil holds the few helpers that several packages' tests share:
// finding the repository, the ONNX Runtime library and the tools the
// end-to-end tests need.
package testutil
