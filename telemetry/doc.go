// Package telemetry holds the program's instrumentation helpers. Library
// packages instrument with the OpenTelemetry API only; which SDK and
// exporters receive the data is decided once, by the command.
package telemetry
