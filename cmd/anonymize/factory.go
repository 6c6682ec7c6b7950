package main

import (
	"cmp"
	"io"
	"os"

	"github.com/anonymize-dev/anonymize/audit"
	"github.com/anonymize-dev/anonymize/inference"
	"github.com/anonymize-dev/anonymize/models"
	"github.com/anonymize-dev/anonymize/pipeline"
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

// Locations are the flags that say where the runtime and the models are.
// The factory resolves them, with the environment variables and the
// working folder, into what the libraries take (engineEnv): no library
// reads the process's environment.
type Locations struct {
	ORTLib     string // --ort-lib
	ModelsDir  string // --models-dir
	AuditModel string // --audit-model
}

// engineEnv resolves loc: --ort-lib, else $ANONYMIZE_ORT_LIB, else next to
// the binary; the model folder (models.ResolveDir); --audit-model, else
// $ANONYMIZE_AUDIT_MODEL, else the model folder's.
func (f *Factory) engineEnv(loc Locations) pipeline.Env {
	dir, source := models.ResolveDir(loc.ModelsDir, f.Getenv, f.cwd())
	return pipeline.Env{
		Library:    inference.LibrarySearch{Flag: loc.ORTLib, Env: f.Getenv(inference.LibraryEnv), Executable: f.executable()},
		Models:     models.Folder{Dir: dir, Source: source},
		AuditModel: cmp.Or(loc.AuditModel, f.Getenv(audit.EnvModel)),
	}
}
