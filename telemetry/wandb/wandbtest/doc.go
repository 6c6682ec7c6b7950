// Package wandbtest is a fake Weights & Biases server for tests: the
// GraphQL upsertBucket mutation and the file stream, with basic auth and
// fault injection (errors, dropped connections, revoked keys, hangs).
//
// It stores streamed lines by offset, as W&B does, so a batch sent twice
// overwrites itself; how often each offset arrived is kept so tests can
// tell resent lines from duplicated or missing ones.
package wandbtest
