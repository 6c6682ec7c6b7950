// Package export installs the OpenTelemetry SDK for a run and connects it
// to the sinks the user chose: OTLP (to a Collector), Weights & Biases,
// the console. The pipeline's instrumentation stays on the OpenTelemetry
// API; this package decides where its spans, metrics and logs go.
package export
