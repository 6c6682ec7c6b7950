// Package atomicfile is the one place the program publishes files: a
// report, a model, a run's state, a finished video. A reader, or the file
// system after a crash, sees the old content or the new one, never a part
// of the new: the content goes to a temporary file with a unique name on
// the same file system, which is fsynced, renamed onto the final name, and
// whose folder is then fsynced so that the rename itself survives a crash.
package atomicfile
