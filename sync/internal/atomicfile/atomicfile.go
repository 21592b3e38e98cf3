// Package atomicfile writes the hub side's small state files so a crash
// leaves either the old file or the new one, never a torn one: write a
// temporary file, fsync it, rename it over the target, fsync the directory
// (the rename is durable only then).
package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
)

// Replace writes b to path atomically with mode perm (applied to a new
// file; the temporary file is created beside path). On error path is
// unchanged and no temporary file is left.
func Replace(path string, b []byte, perm os.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			// The temporary file is garbage after a failure; err matters.
			_ = os.Remove(tmp)
		}
	}()
	if err = f.Chmod(perm); err == nil {
		if _, err = f.Write(b); err == nil {
			err = f.Sync()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// WriteNew creates path (failing if it exists) with mode perm, writes b and
// fsyncs it. The caller syncs the directory once its files are written.
func WriteNew(path string, b []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// SyncDir fsyncs a directory, making the renames and creations in it
// durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
