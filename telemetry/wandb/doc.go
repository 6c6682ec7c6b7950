// Package wandb records a run of the program as a Weights & Biases run,
// from the program's OpenTelemetry data, without the W&B client library.
//
// Each process_single_frame trace becomes one history row (one step per
// frame) whose keys are otel/span/<key>/duration/ms and
// otel/span/<key>/<attribute>, <key> being the span's name for the frame's
// root and its children and <parent>.<name> deeper down
// (otel/span/pose_estimation.inference/duration/ms). The anonymize_video
// span's attributes go to the summary as otel/span/anonymize_video/<attribute>. GPU gauges
// become W&B system metrics (system.gpu.<i>.gpu ...).
//
// Wiring, in the command:
//
//	run, err := wandb.Start(wandb.Options{Settings: s, Config: cfg, Logger: log})
//	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(run.SpanExporter()))
//	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(run.MetricExporter())))
//	... run the job ...
//	tp.Shutdown(ctx); mp.Shutdown(ctx) // deliver the last spans and metrics
//	res := run.Finish(ctxWithDeadline, exitCode)
//
// Every run is written to a local folder first, whatever the mode:
//
//	<WANDB_DIR>/wandb/run-YYYYMMDD_HHMMSS-<id>/          (online)
//	<WANDB_DIR>/wandb/offline-run-YYYYMMDD_HHMMSS-<id>/  (offline)
//	    run.json                  id, names, config, start; exit code and end after Finish
//	    sync.json                 how far the upload got (line offsets, summary hash, completed)
//	    files/wandb-history.jsonl one row per frame
//	    files/wandb-events.jsonl  one line per metric export
//	    files/wandb-summary.json  the summary, rewritten whole
//
// Online, an uploader tails those files and streams them to W&B (the
// GraphQL upsertBucket mutation, then the file stream API); Sync uploads a
// folder later with the same code, resuming at the offsets in sync.json.
// Nothing here blocks or fails the program: full queues drop and count,
// network failures are retried in the background, and whatever did not
// reach W&B stays on disk for `anonymize wandb sync`.
package wandb
