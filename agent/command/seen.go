package command

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// The seen file (hub-commands.md §6): a header line, then one line per
// accepted nonce and per detected loss, each ending in a CRC-32 (IEEE, hex)
// of the text before it:
//
//	kioskedge-seen v1
//	n <expires unix ns> <nonce> <crc>
//	l <lost-at unix ns> - <crc>
const (
	seenHeader   = "kioskedge-seen v1\n"
	maxSeenFile  = 64 << 20 // larger is treated as corrupt
	compactFloor = 256      // lines before compaction is considered
)

// seenSet is the durable set of accepted nonces. It is not safe for
// concurrent use; the Executor serialises it.
type seenSet struct {
	path    string
	f       *os.File
	nonces  map[string]time.Time // nonce -> expires
	lostAt  time.Time            // latest detected loss; zero: none
	lines   int                  // entry lines in the file
	checkAt int                  // lines at which to consider compacting
	keep    time.Duration        // how long after expiry a nonce is kept (the skew)
	// counters of load-time repairs
	truncated, replaced uint64
}

func crcOf(s string) string { return fmt.Sprintf("%08x", crc32.ChecksumIEEE([]byte(s))) }

// openSeen loads path (creating it when missing). A torn or corrupt tail is
// cut off; a file without the header is moved aside to path.corrupt-<ns>.
// Either way the loss is recorded as a line at now, which starts the
// quarantine (Executor doc).
func openSeen(path string, now time.Time, keep time.Duration) (*seenSet, error) {
	s := &seenSet{path: path, nonces: map[string]time.Time{}, keep: keep}
	b, err := readBounded(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return s, s.rewrite(now)
	case errors.Is(err, errSeenTooBig):
		b = nil // handled as a file without a header
	case err != nil:
		return nil, fmt.Errorf("command: reading seen file: %w", err)
	}
	if !bytes.HasPrefix(b, []byte(seenHeader)) {
		aside := fmt.Sprintf("%s.corrupt-%d", path, now.UnixNano())
		if err := os.Rename(path, aside); err != nil {
			return nil, fmt.Errorf("command: moving corrupt seen file aside: %w", err)
		}
		s.replaced++
		s.lostAt = now
		return s, s.rewrite(now)
	}
	good, lost := s.parse(b)
	if lost {
		s.truncated++
		s.lostAt = now
		if err := truncateFile(path, int64(good)); err != nil {
			return nil, err
		}
	}
	s.f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("command: opening seen file: %w", err)
	}
	if lost {
		if err := s.appendLine(lostLine(now)); err != nil {
			return nil, errors.Join(err, s.close())
		}
	}
	s.dropExpired(now)
	return s, nil
}

var errSeenTooBig = errors.New("command: seen file too big")

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSeenFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxSeenFile {
		return nil, errSeenTooBig
	}
	return b, nil
}

// parse reads entry lines after the header; it returns the length of the
// good prefix and whether anything after it was dropped.
func (s *seenSet) parse(b []byte) (good int, lost bool) {
	good = len(seenHeader)
	r := bufio.NewReader(bytes.NewReader(b[good:]))
	for {
		line, err := r.ReadString('\n')
		if err == io.EOF && line == "" {
			return good, false
		}
		if err != nil || !s.parseLine(line[:len(line)-1]) {
			return good, true
		}
		good += len(line)
		s.lines++
	}
}

func (s *seenSet) parseLine(line string) bool {
	fields := bytes.Fields([]byte(line))
	if len(fields) != 4 {
		return false
	}
	body := string(bytes.Join(fields[:3], []byte(" ")))
	if body+" "+string(fields[3]) != line || crcOf(body) != string(fields[3]) {
		return false
	}
	ns, err := strconv.ParseInt(string(fields[1]), 10, 64)
	if err != nil {
		return false
	}
	t := time.Unix(0, ns)
	switch string(fields[0]) {
	case "n":
		s.nonces[string(fields[2])] = t
	case "l":
		if t.After(s.lostAt) {
			s.lostAt = t
		}
	default:
		return false
	}
	return true
}

func nonceLine(nonce string, expires time.Time) string {
	body := "n " + strconv.FormatInt(expires.UnixNano(), 10) + " " + nonce
	return body + " " + crcOf(body) + "\n"
}

func lostLine(at time.Time) string {
	body := "l " + strconv.FormatInt(at.UnixNano(), 10) + " -"
	return body + " " + crcOf(body) + "\n"
}

func (s *seenSet) seen(nonce string) bool { _, ok := s.nonces[nonce]; return ok }

// add records nonce durably (written and fsynced) before returning nil.
func (s *seenSet) add(nonce string, expires, now time.Time, quarantine time.Duration) error {
	if err := s.appendLine(nonceLine(nonce, expires)); err != nil {
		return err
	}
	s.nonces[nonce] = expires
	s.lines++
	if s.lines < s.checkAt {
		return nil
	}
	// Checking costs O(live set), so the next check waits at least as
	// many lines: amortised O(1) per command.
	s.dropExpired(now)
	s.checkAt = s.lines + max(compactFloor, len(s.nonces))
	if s.lines < 2*len(s.nonces) {
		return nil
	}
	if !s.lostAt.IsZero() && now.After(s.lostAt.Add(quarantine)) {
		s.lostAt = time.Time{}
	}
	// A failed compaction leaves the old file, which is still correct.
	if err := s.rewrite(now); err != nil {
		return fmt.Errorf("command: nonce recorded, compaction failed: %w", err)
	}
	s.checkAt = s.lines + max(compactFloor, len(s.nonces))
	return nil
}

func (s *seenSet) appendLine(line string) error {
	if s.f == nil {
		return errors.New("command: seen file not open")
	}
	if _, err := s.f.WriteString(line); err != nil {
		return fmt.Errorf("command: writing seen file: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("command: syncing seen file: %w", err)
	}
	return nil
}

func (s *seenSet) dropExpired(now time.Time) {
	for n, exp := range s.nonces {
		if now.After(exp.Add(s.keep)) {
			delete(s.nonces, n)
		}
	}
}

// rewrite writes the live set (and the loss line, if any) to a temporary
// file, syncs it, renames it over path, syncs the directory and reopens it
// for appending.
func (s *seenSet) rewrite(now time.Time) error {
	var b bytes.Buffer
	b.WriteString(seenHeader)
	lines := 0
	if !s.lostAt.IsZero() {
		b.WriteString(lostLine(s.lostAt))
		lines++
	}
	for n, exp := range s.nonces {
		b.WriteString(nonceLine(n, exp))
		lines++
	}
	tmp := s.path + ".tmp"
	if err := writeSynced(tmp, b.Bytes()); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("command: replacing seen file: %w", err)
	}
	if err := syncDir(filepath.Dir(s.path)); err != nil {
		return err
	}
	if err := s.close(); err != nil {
		return err
	}
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("command: opening seen file: %w", err)
	}
	s.f, s.lines = f, lines
	return nil
}

func (s *seenSet) close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("command: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		// The write error is the one to report.
		_ = f.Close()
		return fmt.Errorf("command: writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		// The sync error is the one to report.
		_ = f.Close()
		return fmt.Errorf("command: syncing %s: %w", path, err)
	}
	return f.Close()
}

func truncateFile(path string, n int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("command: %w", err)
	}
	if err := f.Truncate(n); err != nil {
		_ = f.Close() // the truncate error is the one to report
		return fmt.Errorf("command: truncating seen file: %w", err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close() // the sync error is the one to report
		return fmt.Errorf("command: syncing seen file: %w", err)
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("command: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("command: syncing %s: %w", dir, err)
	}
	return nil
}
