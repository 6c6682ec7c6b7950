package retry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

var errFlaky = errors.New("connection reset")

// busy is a server's answer that says when to come back.
type busy struct{ after time.Duration }

func (b busy) Error() string             { return "429 Too Many Requests" }
func (b busy) RetryAfter() time.Duration { return b.after }

// script is an Op that fails with errs[i] on try i (progressing where
// progress[i]) and succeeds once they run out.
type script struct {
	errs     []error
	progress []bool
	tries    int
}

func (s *script) op(context.Context) (bool, error) {
	i := s.tries
	s.tries++
	if i >= len(s.errs) {
		return false, nil
	}
	return i < len(s.progress) && s.progress[i], s.errs[i]
}

func repeat[T any](v T, n int) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestDo(t *testing.T) {
	fast := Policy{Initial: time.Microsecond, Max: 10 * time.Microsecond}
	tests := []struct {
		name      string
		policy    Policy
		script    script
		wantTries int
		wantErr   error // nil: success
	}{
		{"first try", fast, script{}, 1, nil},
		{"flaky, then fine", fast, script{errs: repeat(errFlaky, 2)}, 3, nil},
		{"permanent", fast, script{errs: []error{Permanent(errFlaky)}}, 1, errFlaky},
		{"gives up after failures in a row", Policy{Initial: time.Microsecond, Max: time.Microsecond, Failures: 3},
			script{errs: repeat(errFlaky, 10)}, 3, errFlaky},
		{"progress resets the count", Policy{Initial: time.Microsecond, Max: time.Microsecond, Failures: 2},
			script{errs: repeat(errFlaky, 10), progress: repeat(true, 10)}, 11, nil},
		{"tries cap even progress", Policy{Initial: time.Microsecond, Max: time.Microsecond, Failures: 2, Tries: 4},
			script{errs: repeat(errFlaky, 10), progress: repeat(true, 10)}, 4, errFlaky},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			notified := 0
			tt.policy.Notify = func(error, time.Duration) { notified++ }
			s := tt.script
			err := Do(context.Background(), tt.policy, s.op)
			if s.tries != tt.wantTries {
				t.Errorf("%d tries, want %d", s.tries, tt.wantTries)
			}
			switch {
			case tt.wantErr == nil && err != nil:
				t.Errorf("Do = %v, want success", err)
			case tt.wantErr != nil && (!errors.Is(err, tt.wantErr) || IsPermanent(err)):
				t.Errorf("Do = %#v, want %v, unwrapped from Permanent", err, tt.wantErr)
			}
			// Every failure but the last is retried.
			if notified != tt.wantTries-1 {
				t.Errorf("notified %d times, want %d", notified, tt.wantTries-1)
			}
		})
	}
}

// TestRetryAfter: a server's Retry-After replaces a shorter delay, capped
// at the policy's largest.
func TestRetryAfter(t *testing.T) {
	for _, tt := range []struct {
		after, max, want time.Duration
	}{
		{after: 5 * time.Millisecond, max: time.Second, want: 5 * time.Millisecond},
		{after: time.Hour, max: 3 * time.Millisecond, want: 3 * time.Millisecond},
	} {
		var delays []time.Duration
		p := Policy{Initial: time.Microsecond, Max: tt.max, Notify: func(_ error, d time.Duration) { delays = append(delays, d) }}
		s := script{errs: []error{fmt.Errorf("post: %w", busy{tt.after})}}
		if err := Do(context.Background(), p, s.op); err != nil {
			t.Fatal(err)
		}
		if len(delays) != 1 || delays[0] != tt.want {
			t.Errorf("Retry-After %v, max %v: waited %v, want %v", tt.after, tt.max, delays, tt.want)
		}
	}
}

// TestDoCancelled: cancelling while waiting stops at once with the
// context's cause.
func TestDoCancelled(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	stop := errors.New("SIGTERM")
	p := Policy{Initial: time.Hour, Max: time.Hour, Notify: func(error, time.Duration) { cancel(stop) }}
	start := time.Now()
	s := script{errs: repeat(errFlaky, 3)}
	if err := Do(ctx, p, s.op); !errors.Is(err, stop) || !strings.Contains(err.Error(), "last attempt: connection reset") {
		t.Errorf("Do = %v, want the context's cause with the last attempt's error", err)
	}
	if time.Since(start) > 10*time.Second || s.tries != 1 {
		t.Errorf("%d tries in %v", s.tries, time.Since(start))
	}
}
