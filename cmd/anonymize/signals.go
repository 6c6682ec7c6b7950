package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// interruption is why a run was cancelled: a signal asked the program to
// stop. Its exit status is the shell's convention for a process a signal
// ended, 128 plus the signal's number: 130 for SIGINT (Ctrl-C), 143 for
// SIGTERM (kill, Kubernetes, systemd), 129 for SIGHUP (the terminal or
// ssh session closed).
type interruption struct{ sig syscall.Signal }

func (i interruption) Error() string { return "interrupted by " + i.name() }

func (i interruption) exitCode() int { return 128 + int(i.sig) }

func (i interruption) name() string {
	switch i.sig {
	case syscall.SIGINT:
		return "SIGINT (Ctrl-C)"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGHUP:
		return "SIGHUP (terminal closed)"
	}
	return fmt.Sprintf("signal %d", int(i.sig))
}

// stopSignals are the signals that stop a run cleanly.
var stopSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP}

// notifyContext returns a context that the first of stopSignals cancels,
// with an interruption as its cause. After that first signal the default
// handling comes back, so a second one kills the process at once if the
// clean-up hangs; the children are killed with it (video's commands tie
// them to this process), and the next run removes what is left.
//
// SIGPIPE is caught too: after a terminal or ssh session closes, writing
// to stderr fails, and Go would otherwise end the program there and then,
// before it could clean up.
func notifyContext(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	stops := make(chan os.Signal, 1)
	signal.Notify(stops, stopSignals...)
	pipes := make(chan os.Signal, 1)
	signal.Notify(pipes, syscall.SIGPIPE)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-stops:
			cancel(interruption{s.(syscall.Signal)})
			signal.Stop(stops)
		case <-done:
		}
	}()
	return ctx, func() {
		close(done)
		signal.Stop(stops)
		cancel(nil)
	}
}
