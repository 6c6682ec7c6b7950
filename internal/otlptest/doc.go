// Package otlptest is an OTLP receiver for tests and local measurements:
// it accepts traces, metrics and logs over gRPC and HTTP/protobuf, decodes them
// and keeps what arrived, so a test can check what the program sent.
package otlptest
