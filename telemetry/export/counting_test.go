package export

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestErrorCounterClosing: once Shutdown has begun, an export cancelled
// under it is no loss; every other error, and a cancellation before, is.
func TestErrorCounterClosing(t *testing.T) {
	grpcCancelled := fmt.Errorf("failed to upload metrics: %w", status.Error(codes.Canceled, "context canceled"))
	for _, tc := range []struct {
		name    string
		closing bool
		err     error
		counted bool
	}{
		{"cancelled while closing", true, fmt.Errorf("export: %w", context.Canceled), false},
		{"gRPC cancelled while closing", true, grpcCancelled, false},
		{"refused while closing", true, status.Error(codes.Unavailable, "connection refused"), true},
		{"deadline while closing", true, context.DeadlineExceeded, true},
		{"cancelled while running", false, grpcCancelled, true},
		{"other error while running", false, errors.New("boom"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h errorCounter
			h.closing.Store(tc.closing)
			h.Handle(tc.err)
			if got := h.n.Load() == 1; got != tc.counted {
				t.Errorf("counted = %v, want %v", got, tc.counted)
			}
		})
	}
}
