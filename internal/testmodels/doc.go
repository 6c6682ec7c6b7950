// Package testmodels opens the synthetic models through the real ONNX
// Runtime for the tests of the packages that feed them.
package testmodels
