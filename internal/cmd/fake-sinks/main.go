// Command fake-sinks runs local stand-ins for an OpenTelemetry Collector
// (OTLP over gRPC and HTTP) and for Weights & Biases, so telemetry can be
// tried and its overhead measured without either. It prints the
// environment to point anonymize at them, and on Ctrl-C what it received.
//
//	go run ./internal/cmd/fake-sinks
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"

	"github.com/anonymize-dev/anonymize/internal/otlptest"
	"github.com/anonymize-dev/anonymize/telemetry/wandb/wandbtest"
)

func main() {
	grpcAddr := flag.String("grpc", "127.0.0.1:4317", "OTLP/gRPC listen address")
	httpAddr := flag.String("http", "127.0.0.1:4318", "OTLP/HTTP listen address")
	flag.Parse()

	recv := &otlptest.Receiver{}
	gl, err := net.Listen("tcp", *grpcAddr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake-sinks:", err)
		os.Exit(1)
	}
	stop := recv.ServeGRPC(gl)
	defer stop()
	hl, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake-sinks:", err)
		os.Exit(1)
	}
	go http.Serve(hl, recv.HTTPHandler())

	const key = "local-fake-key"
	wb := wandbtest.Start(key)
	defer wb.Close()

	fmt.Printf("export OTEL_EXPORTER_OTLP_ENDPOINT=http://%s OTEL_EXPORTER_OTLP_PROTOCOL=grpc\n", gl.Addr())
	fmt.Printf("# or: export OTEL_EXPORTER_OTLP_ENDPOINT=http://%s OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf\n", hl.Addr())
	fmt.Printf("export WANDB_BASE_URL=%s WANDB_API_KEY=%s WANDB_ENTITY=local WANDB_PROJECT=anonymize\n", wb.URL, key)
	fmt.Println("# Ctrl-C to stop and print what arrived")

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	<-sig
	fmt.Printf("OTLP: %d requests, %d spans, %d metric series, %d log records\n", recv.Requests(), len(recv.Spans()), len(recv.Metrics()), len(recv.Logs()))
	for _, r := range wb.Runs() {
		fmt.Printf("W&B run %s: %d history rows, %d events, complete=%v\n", r.Name, r.History.Len(), r.Events.Len(), r.Complete)
	}
}
