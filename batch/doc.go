// Package batch anonymizes every video of a folder tree into a mirror tree,
// resumably and, when asked, split across machines: it is the library
// behind `anonymize batch IN_DIR OUT_DIR` and `anonymize report merge`.
//
// # What a run does
//
// Discover walks IN_DIR (symlinked folders are not followed, OUT_DIR is
// skipped when it lies inside IN_DIR) and maps each selected video to the
// same relative path under OUT_DIR, keeping the extension when the encoder
// can write that container and using .mp4 otherwise. Shard keeps the files
// of one shard, chosen by a hash of the relative path so that n machines
// split a dataset without talking to each other. Run then skips what an
// earlier run finished, processes the rest with Options.Jobs videos at a
// time on one Processor, and keeps an audit report up to date.
//
// # Files under OUT_DIR
//
//	OUT_DIR/.anonymize/state.jsonl         one JSON line per finished file
//	OUT_DIR/.anonymize/tmp/                partial outputs (emptied at start)
//	OUT_DIR/.anonymize/lock                held while a run is going
//	OUT_DIR/anonymize-report.json          the audit report (schema: report.schema.json)
//
// A sharded run uses state.shard-I-of-N.jsonl, tmp-I-of-N/, lock-I-of-N and
// anonymize-report.shard-I-of-N.json instead, so that the shards of one
// dataset can write to one (shared) OUT_DIR at the same time. Every run
// reads all state files, so changing the number of shards, or going from
// sharded to unsharded, does not redo finished files.
//
// # Resuming, and why a SIGKILL at any moment is safe
//
// A file is done when, in this order:
//
//  1. the Processor renamed the finished output into place (it writes the
//     partial file in the .anonymize/tmp folder, on the same file system,
//     and fsyncs it before the rename);
//  2. the output's folder was fsynced, so the rename survives a power cut;
//  3. a state line (input size and mtime, output size and sha256, settings
//     hash) was appended to the state file and the file fsynced;
//  4. the report was rewritten (temporary file in .anonymize, fsync,
//     rename, fsync of OUT_DIR).
//
// The report is also rewritten when a file starts, marking it running, so
// that the report of a run that died (say, out of memory on a crowded
// video) names the files it was working on.
//
// A kill before 1 leaves at most a partial file in the tmp folder, which the
// next run deletes; between 1 and 3 it leaves an output without a state
// line, which the next run redoes and overwrites; during 3 it leaves a torn
// last line, which loading ignores and the next append cuts off; before 4
// the report lags by one file, and the next run rewrites it from the state.
// A re-run skips a file only when its latest state line matches the input's
// current size and mtime and the current settings hash, and the output
// still exists with the recorded size; Options.Force redoes everything.
// The report is therefore never ahead of the state, and the output tree
// only ever holds complete videos.
//
// # Errors
//
// Run returns an error only for what stops the batch as a whole, and says
// which with its chain:
//
//   - ErrUsage: what was asked cannot be done (bad patterns, OUT_DIR equal
//     to or containing IN_DIR, a bad shard);
//   - context.Canceled (or the context's cause): interrupted; the state lets
//     a re-run resume;
//   - anything else: the batch could not run (unreadable IN_DIR, state or
//     report not writable, another run holding OUT_DIR).
//
// A file that fails does not make Run fail: it is counted in
// Summary.Failed and described in the report. The command turns these
// into its exit statuses.
//
// # What the engine must provide
//
// Run needs the processor's device, execution providers and model sha256s
// for the settings hash and the report: the Processor must implement
// Describer, as *pipeline.Engine does.
package batch
