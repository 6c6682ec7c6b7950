package video

import (
	"strings"
	"sync"
)

// tailBuffer keeps the last max bytes written to it. Subprocess stderr goes
// here: an hour-long encode may print a lot, and only the end matters when
// explaining a failure.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if len(p) >= t.max {
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		return n, nil
	}
	// Trim only once the buffer reaches twice the limit so that writes cost
	// amortised O(len(p)).
	if len(t.buf)+len(p) > 2*t.max {
		keep := t.max - len(p)
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-keep:]...)
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

// lastLines returns up to n of the last non-empty lines, oldest first.
func (t *tailBuffer) lastLines(n int) []string {
	t.mu.Lock()
	s := string(t.buf)
	t.mu.Unlock()
	if len(s) > t.max {
		s = s[len(s)-t.max:]
	}
	var out []string
	lines := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
	for i := len(lines) - 1; i >= 0 && len(out) < n; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			out = append(out, l)
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}
