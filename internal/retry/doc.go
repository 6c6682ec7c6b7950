// Package retry is the program's one retry policy, on cenkalti/backoff:
// exponential delays with jitter, so that many clients do not retry in
// step; a server's Retry-After honoured up to a cap; errors marked
// Permanent not retried; and a limit on failures in a row without
// progress, so that a slow transfer that keeps moving is never abandoned
// while a dead one is. Model downloads and W&B uploads use it.
package retry
