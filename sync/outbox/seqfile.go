package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
)

// seqBlock is how many sequences one reservation covers.
const seqBlock = 100_000

var seqMagic = [4]byte{'K', 'S', 'E', 'Q'}

const seqFileLen = 4 + 8 + 4

// readReservation returns the reserved-through value of the side file, 0
// if it does not exist. A damaged file is an error wrapping ErrCorrupt.
func readReservation(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("outbox: read seq reservation: %w", err)
	}
	return decodeReservation(b)
}

func decodeReservation(b []byte) (uint64, error) {
	if len(b) != seqFileLen || [4]byte(b[:4]) != seqMagic ||
		crc32.ChecksumIEEE(b[:12]) != binary.BigEndian.Uint32(b[12:]) {
		return 0, fmt.Errorf("%w: seq reservation file damaged", ErrCorrupt)
	}
	return binary.BigEndian.Uint64(b[4:12]), nil
}

func encodeReservation(n uint64) []byte {
	b := append(seqMagic[:0:0], seqMagic[:]...)
	b = binary.BigEndian.AppendUint64(b, n)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
}

// writeReservation durably replaces the side file with "reserved through
// n": write a temp file, fsync, rename over, fsync the directory.
func writeReservation(path string, n uint64) error {
	tmp := path + ".tmp"
	if err := writeFileSync(tmp, encodeReservation(n)); err != nil {
		return fmt.Errorf("outbox: write seq reservation: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("outbox: write seq reservation: %w", err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("outbox: write seq reservation: %w", err)
	}
	return nil
}

func writeFileSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		return errors.Join(err, f.Close())
	}
	if err := f.Sync(); err != nil {
		return errors.Join(err, f.Close())
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		return errors.Join(err, d.Close())
	}
	return d.Close()
}
