// Package onnxgraph writes small ONNX models by hand.
//
// No generated ONNX protobuf types are available to this module, so the
// package encodes the few ModelProto fields it needs directly with protowire.
// It exists to build the synthetic stand-in models the tests and the demo
// run, and to put a small graph in front of an existing model (Prepend);
// it is not a general ONNX library.
//
// A Graph collects inputs, constants, nodes and outputs in the order they are
// added; Marshal checks that every value is defined once and before its first
// use (ONNX requires nodes in topological order), then encodes the model. The
// builder methods never fail on their own: the first mistake is remembered and
// returned by Marshal, so graph-building code reads as a plain sequence of
// operations.
package onnxgraph
