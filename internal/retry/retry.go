package retry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Policy says how an operation is retried.
type Policy struct {
	Initial time.Duration // first delay
	Max     time.Duration // largest delay, and the cap on a server's Retry-After
	// Failures gives up after this many failures in a row without
	// progress (the operation reports progress); 0 never gives up on that
	// count.
	Failures int
	// Tries gives up after this many tries in all; 0 never does.
	Tries int
	// Notify, when set, hears every failure that will be retried and the
	// delay before the next try.
	Notify func(err error, delay time.Duration)
}

// Permanent marks an error that no retry can fix.
func Permanent(err error) error { return backoff.Permanent(err) }

// IsPermanent reports whether err was marked Permanent.
func IsPermanent(err error) bool {
	var pe *backoff.PermanentError
	return errors.As(err, &pe)
}

// RetryAfterError is an error that carries the delay a server asked for
// (Retry-After). An error in the chain of a failed try that implements it
// makes the next try wait that long, up to Policy.Max, when it is longer
// than the policy's own delay.
type RetryAfterError interface {
	error
	RetryAfter() time.Duration
}

// Op is one try. progressed says that it got further than the try before
// (bytes arrived, say), even though it failed.
type Op func(ctx context.Context) (progressed bool, err error)

// Do runs op until it succeeds, fails with a Permanent error, the policy
// gives up or ctx ends, and returns op's last error (unwrapped from
// Permanent), or, when ctx ended, its cause with the last attempt's error
// in the message.
func Do(ctx context.Context, p Policy, op Op) error {
	s := &state{p: p, exp: backoff.NewExponentialBackOff()}
	s.exp.InitialInterval = p.Initial
	s.exp.MaxInterval = p.Max
	s.exp.Multiplier = 2
	s.exp.RandomizationFactor = 0.5
	opts := []backoff.RetryOption{
		backoff.WithBackOff(s),
		backoff.WithMaxElapsedTime(0),
		backoff.WithNotify(func(err error, d time.Duration) {
			if p.Notify != nil {
				p.Notify(err, d)
			}
		}),
	}
	if p.Tries > 0 {
		opts = append(opts, backoff.WithMaxTries(uint(p.Tries)))
	}
	var last error
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		progressed, err := op(ctx)
		last = err
		if err != nil && progressed {
			s.Reset()
		}
		var ra RetryAfterError
		if errors.As(err, &ra) {
			s.after = ra.RetryAfter()
		}
		return struct{}{}, err
	}, opts...)
	if err != nil && ctx.Err() != nil {
		cause := context.Cause(ctx)
		if last != nil && !errors.Is(last, cause) {
			return fmt.Errorf("%w (last attempt: %v)", cause, last)
		}
		return cause
	}
	return err
}

// state is the BackOff of one Do: the exponential delays, reset by
// progress (Reset), stopped after Policy.Failures failures in a row, and
// lengthened to a Retry-After.
type state struct {
	p        Policy
	exp      *backoff.ExponentialBackOff
	failures int
	after    time.Duration // Retry-After of the last failure
}

func (s *state) NextBackOff() time.Duration {
	s.failures++
	after := s.after
	s.after = 0
	if s.p.Failures > 0 && s.failures >= s.p.Failures {
		return backoff.Stop
	}
	d := s.exp.NextBackOff()
	if after > d {
		d = min(after, s.p.Max)
	}
	return d
}

func (s *state) Reset() {
	s.exp.Reset()
	s.failures = 0
}
