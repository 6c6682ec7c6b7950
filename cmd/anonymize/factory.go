package main

import (
	"io"
	"os"

	"golang.org/x/term"
)

// IOStreams are the command's standard streams, injected so tests can
// capture what a command prints.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
	// ErrIsTerminal says whether ErrOut is a terminal: the progress bar is
	// drawn only then.
	ErrIsTerminal bool
	// LogFormat is how log records are written to ErrOut (--log-format).
	LogFormat logFormat
}

// Factory holds what commands take from the process they run in.
type Factory struct {
	IO         *IOStreams
	Getenv     func(string) string
	Executable func() (string, error)
	Getwd      func() (string, error)
}

// NewFactory returns the real process environment.
func NewFactory() *Factory {
	return &Factory{
		IO: &IOStreams{
			In:            os.Stdin,
			Out:           os.Stdout,
			ErrOut:        os.Stderr,
			ErrIsTerminal: term.IsTerminal(int(os.Stderr.Fd())),
		},
		Getenv:     os.Getenv,
		Executable: os.Executable,
		Getwd:      os.Getwd,
	}
}

func (f *Factory) cwd() string {
	if d, err := f.Getwd(); err == nil {
		return d
	}
	return "."
}

func (f *Factory) executable() string {
	if p, err := f.Executable(); err == nil {
		return p
	}
	return ""
}
