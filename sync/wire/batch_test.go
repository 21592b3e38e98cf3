package wire_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/kioskedge/kioskedge/sync/wire"
)

func newCodec(t testing.TB, lim wire.Limits) *wire.Codec {
	t.Helper()
	c, err := wire.NewCodec(lim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// envelope builds a batch envelope field by field as §5 lays it out,
// independently of the encoder, so tests can produce any header.
type envelope struct {
	magic         string
	version, comp byte
	agent, boot   string
	first, last   uint64
	count, rawLen uint64
	payload       []byte
}

func (e envelope) bytes() []byte {
	b := append([]byte(e.magic), e.version, e.comp)
	b = binary.AppendUvarint(b, uint64(len(e.agent)))
	b = append(b, e.agent...)
	b = binary.AppendUvarint(b, uint64(len(e.boot)))
	b = append(b, e.boot...)
	for _, v := range []uint64{e.first, e.last, e.count, e.rawLen} {
		b = binary.AppendUvarint(b, v)
	}
	return append(b, e.payload...)
}

// payload lays out entries as §5.2 says: uvarint delta from the previous
// sequence (First-1 for the first), uvarint length, record bytes.
func payload(first uint64, entries []wire.Entry) []byte {
	var p []byte
	prev := first - 1
	for _, e := range entries {
		p = binary.AppendUvarint(p, e.Seq-prev)
		p = binary.AppendUvarint(p, uint64(len(e.Raw)))
		p = append(p, e.Raw...)
		prev = e.Seq
	}
	return p
}

// plain returns an uncompressed envelope for entries covering [first, last].
func plain(agent, boot string, first, last uint64, entries []wire.Entry) envelope {
	p := payload(first, entries)
	return envelope{"KB", 1, wire.CompressionNone, agent, boot, first, last, uint64(len(entries)), uint64(len(p)), p}
}

func testEntries(t testing.TB, seqs ...uint64) []wire.Entry {
	t.Helper()
	var es []wire.Entry
	for i, s := range seqs {
		raw, err := wire.MarshalRecord(wire.Record{
			Kind: wire.KindAccess, Class: wire.ClassCritical,
			Time: time.UnixMilli(1714552200123 + int64(i)).In(time.FixedZone("", 3*3600)),
			Body: fmt.Appendf(nil, `{"door":"d%d","result":"granted"}`, i%3),
		})
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, wire.Entry{Seq: s, Raw: raw})
	}
	return es
}

func sameEntries(t *testing.T, got, want []wire.Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Seq != want[i].Seq || !bytes.Equal(got[i].Raw, want[i].Raw) {
			t.Fatalf("entry %d: seq %d % x, want seq %d % x", i, got[i].Seq, got[i].Raw, want[i].Seq, want[i].Raw)
		}
	}
}

func TestBatchRoundTrip(t *testing.T) {
	c := newCodec(t, wire.Limits{})
	for _, tc := range []struct {
		name        string
		first, last uint64
		seqs        []uint64
	}{
		{"one", 1, 1, []uint64{1}},
		{"contiguous", 10, 14, []uint64{10, 11, 12, 13, 14}},
		{"gaps declared elsewhere", 100, 200, []uint64{100, 150, 199}},
		{"range wider than entries", 1, 1000, []uint64{500}},
		{"large sequences", 1 << 40, 1<<40 + 2, []uint64{1 << 40, 1<<40 + 2}},
		{"top of uint64", 1<<64 - 3, 1<<64 - 1, []uint64{1<<64 - 3, 1<<64 - 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es := testEntries(t, tc.seqs...)
			// zstd, as EncodeBatch writes it.
			msg, _, err := c.EncodeBatch("gate-01", "boot-1", tc.first, tc.last, es, nil)
			if err != nil {
				t.Fatal(err)
			}
			b, err := c.DecodeBatch(msg)
			if err != nil {
				t.Fatal(err)
			}
			if b.Agent != "gate-01" || b.BootID != "boot-1" || b.First != tc.first || b.Last != tc.last || b.Compression != wire.CompressionZstd {
				t.Errorf("header %+v", b)
			}
			sameEntries(t, b.Entries, es)
			// The same content uncompressed decodes the same.
			b, err = c.DecodeBatch(plain("gate-01", "boot-1", tc.first, tc.last, es).bytes())
			if err != nil {
				t.Fatal(err)
			}
			if b.First != tc.first || b.Last != tc.last || b.Compression != wire.CompressionNone {
				t.Errorf("header %+v", b)
			}
			sameEntries(t, b.Entries, es)
		})
	}
}

// TestEncodeBatchHeader checks the bytes before the compressed payload.
func TestEncodeBatchHeader(t *testing.T) {
	c := newCodec(t, wire.Limits{})
	es := testEntries(t, 300)
	msg, _, err := c.EncodeBatch("g", "", 300, 301, es, nil)
	if err != nil {
		t.Fatal(err)
	}
	rawLen := len(payload(300, es))
	want := []byte{'K', 'B', 1, 1, 1, 'g', 0, 0xac, 0x02, 0xad, 0x02, 1, byte(rawLen)}
	if rawLen >= 128 || !bytes.HasPrefix(msg, want) {
		t.Fatalf("header % x, want prefix % x", msg[:len(want)], want)
	}
	// What follows is one zstd frame holding exactly the payload.
	d, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	raw, err := d.DecodeAll(msg[len(want):], nil)
	if err != nil || !bytes.Equal(raw, payload(300, es)) {
		t.Errorf("payload % x, %v", raw, err)
	}
}

func TestEncodeBatchScratchReuse(t *testing.T) {
	c := newCodec(t, wire.Limits{})
	var scratch []byte
	var msgs [][]byte
	sets := [][]uint64{{1, 2, 3}, {4}, {5, 9}}
	for _, s := range sets {
		var msg []byte
		var err error
		msg, scratch, err = c.EncodeBatch("a", "b", s[0], s[len(s)-1], testEntries(t, s...), scratch)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, msg)
	}
	// Earlier messages must not have been overwritten through the scratch.
	for i, msg := range msgs {
		b, err := c.DecodeBatch(msg)
		if err != nil {
			t.Fatal(err)
		}
		sameEntries(t, b.Entries, testEntries(t, sets[i]...))
	}
}

func TestEncodeBatchErrors(t *testing.T) {
	c := newCodec(t, wire.Limits{})
	for _, tc := range []struct {
		name        string
		agent, boot string
		first, last uint64
		seqs        []uint64
		want        error
	}{
		{"no entries", "a", "b", 1, 1, nil, wire.ErrEmptyBatch},
		{"first zero", "a", "b", 0, 2, []uint64{1}, wire.ErrBadBatch},
		{"entry before first", "a", "b", 5, 9, []uint64{4, 5}, wire.ErrBadBatch},
		{"entry after last", "a", "b", 5, 9, []uint64{9, 10}, wire.ErrBadBatch},
		{"not increasing", "a", "b", 1, 9, []uint64{3, 2}, wire.ErrBadBatch},
		{"duplicate", "a", "b", 1, 9, []uint64{3, 3}, wire.ErrBadBatch},
		{"bad agent", "a/b", "b", 1, 1, []uint64{1}, wire.ErrBadBatch},
		{"empty agent", "", "b", 1, 1, []uint64{1}, wire.ErrBadBatch},
		{"boot id over 256 bytes", "a", strings.Repeat("b", 257), 1, 1, []uint64{1}, wire.ErrBadBatch},
	} {
		if _, _, err := c.EncodeBatch(tc.agent, tc.boot, tc.first, tc.last, testEntries(t, tc.seqs...), nil); !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
	}
	// The longest accepted ids round-trip.
	agent, boot := strings.Repeat("a", 128), strings.Repeat("b", 256)
	msg, _, err := c.EncodeBatch(agent, boot, 1, 1, testEntries(t, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := c.DecodeBatch(msg); err != nil || b.Agent != agent || b.BootID != boot {
		t.Errorf("longest ids: %v", err)
	}
}

func TestDecodeBatchErrors(t *testing.T) {
	c := newCodec(t, wire.Limits{MaxMessage: 4096, MaxRaw: 2048, MaxRecords: 10})
	es := testEntries(t, 1, 2)
	good := plain("gate-01", "b1", 1, 2, es)
	mod := func(f func(*envelope)) []byte {
		e := good
		e.payload = bytes.Clone(good.payload)
		f(&e)
		return e.bytes()
	}
	raw := payload(1, es)
	zstdOf := func(b []byte) []byte {
		enc, err := zstd.NewWriter(nil)
		if err != nil {
			t.Fatal(err)
		}
		defer enc.Close()
		return enc.EncodeAll(b, nil)
	}
	for _, tc := range []struct {
		name string
		msg  []byte
		want error
	}{
		{"empty", nil, wire.ErrBadBatch},
		{"three bytes", []byte("KB\x01"), wire.ErrBadBatch},
		{"bad magic", mod(func(e *envelope) { e.magic = "KC" }), wire.ErrBadBatch},
		{"lower-case magic", mod(func(e *envelope) { e.magic = "kb" }), wire.ErrBadBatch},
		{"version 0", mod(func(e *envelope) { e.version = 0 }), wire.ErrBatchVersion},
		{"version 2", mod(func(e *envelope) { e.version = 2 }), wire.ErrBatchVersion},
		{"compression 2", mod(func(e *envelope) { e.comp = 2 }), wire.ErrBadBatch},
		{"empty agent", mod(func(e *envelope) { e.agent = "" }), wire.ErrBadBatch},
		{"agent with +", mod(func(e *envelope) { e.agent = "g+1" }), wire.ErrBadBatch},
		{"agent $SYS", mod(func(e *envelope) { e.agent = "$SYS" }), wire.ErrBadBatch},
		{"agent 129 bytes", mod(func(e *envelope) { e.agent = strings.Repeat("a", 129) }), wire.ErrBadBatch},
		{"agent length past end", []byte("KB\x01\x00\x20gat"), wire.ErrBadBatch},
		{"boot id 257 bytes", mod(func(e *envelope) { e.boot = strings.Repeat("b", 257) }), wire.ErrBadBatch},
		{"header truncated", good.bytes()[:14], wire.ErrBadBatch},
		{"first 0", mod(func(e *envelope) { e.first = 0 }), wire.ErrBadBatch},
		{"last before first", mod(func(e *envelope) { e.first, e.last = 2, 1 }), wire.ErrBadBatch},
		{"count 0", mod(func(e *envelope) { e.count = 0 }), wire.ErrEmptyBatch},
		{"count over range", mod(func(e *envelope) { e.count = 3 }), wire.ErrBatchTooBig},
		{"count over MaxRecords", mod(func(e *envelope) { e.last, e.count = 100, 11 }), wire.ErrBatchTooBig},
		{"raw over MaxRaw", mod(func(e *envelope) { e.rawLen = 2049 }), wire.ErrBatchTooBig},
		{"message over MaxMessage", mod(func(e *envelope) { e.payload = append(e.payload, make([]byte, 4096)...) }), wire.ErrBatchTooBig},
		{"raw shorter than header", mod(func(e *envelope) { e.payload = e.payload[:len(e.payload)-1] }), wire.ErrBadBatch},
		{"raw longer than header", mod(func(e *envelope) { e.rawLen-- }), wire.ErrBadBatch},
		{"fewer records than count", mod(func(e *envelope) { e.last, e.count = 3, 3 }), wire.ErrBadBatch},
		{"more records than count", mod(func(e *envelope) { e.count = 1 }), wire.ErrBadBatch},
		{"delta beyond last", mod(func(e *envelope) { e.last, e.count = 1, 1 }), wire.ErrBadBatch},
		{"second delta beyond last", mod(func(e *envelope) { e.payload = payload(1, []wire.Entry{es[0], {Seq: 3, Raw: es[1].Raw}}) }), wire.ErrBadBatch},
		{"delta zero", mod(func(e *envelope) { e.payload = append([]byte{0}, e.payload[1:]...) }), wire.ErrBadBatch},
		{"delta unterminated", mod(func(e *envelope) { e.payload, e.rawLen, e.count = []byte{0x80}, 1, 1 }), wire.ErrBadBatch},
		{"record length past payload", mod(func(e *envelope) {
			e.payload[1]++
			e.payload = e.payload[:2+int(e.payload[1])-1]
			e.rawLen = uint64(len(e.payload))
		}), wire.ErrBadBatch},
		{"bad zstd", mod(func(e *envelope) {
			e.comp, e.payload = wire.CompressionZstd, []byte{0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff}
		}), wire.ErrBadBatch},
		{"not zstd at all", mod(func(e *envelope) { e.comp = wire.CompressionZstd }), wire.ErrBadBatch},
		{"zstd payload longer than header", mod(func(e *envelope) { e.comp, e.payload, e.rawLen = wire.CompressionZstd, zstdOf(raw), uint64(len(raw)-1) }), wire.ErrBadBatch},
		{"zstd payload shorter than header", mod(func(e *envelope) { e.comp, e.payload, e.rawLen = wire.CompressionZstd, zstdOf(raw), uint64(len(raw)+1) }), wire.ErrBadBatch},
		{"zstd expands beyond MaxRaw", mod(func(e *envelope) {
			e.comp, e.payload, e.rawLen = wire.CompressionZstd, zstdOf(append(append([]byte{}, raw...), make([]byte, 4000)...)), uint64(len(raw))
		}), wire.ErrBadBatch},
	} {
		b, err := c.DecodeBatch(tc.msg)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v (batch %+v)", tc.name, err, tc.want, b)
		}
	}
	// The unmodified envelope and its zstd form decode, so each case above
	// failed for the one reason it was built for.
	if _, err := c.DecodeBatch(good.bytes()); err != nil {
		t.Errorf("good plain: %v", err)
	}
	if _, err := c.DecodeBatch(mod(func(e *envelope) { e.comp, e.payload = wire.CompressionZstd, zstdOf(raw) })); err != nil {
		t.Errorf("good zstd: %v", err)
	}
}

// TestDecodeBatchDeltaBeyondLast isolates the delta check: count fits the
// range, but the second delta jumps past Last.
func TestDecodeBatchDeltaBeyondLast(t *testing.T) {
	c := newCodec(t, wire.Limits{})
	es := testEntries(t, 1, 2)
	p := payload(1, []wire.Entry{es[0], {Seq: 1 + 5, Raw: es[1].Raw}})
	msg := envelope{"KB", 1, 0, "g", "", 1, 5, 2, uint64(len(p)), p}.bytes()
	if _, err := c.DecodeBatch(msg); !errors.Is(err, wire.ErrBadBatch) || !strings.Contains(err.Error(), "delta") {
		t.Errorf("err %v, want a sequence delta error", err)
	}
}

// TestDecodeBatchHeaderClaimDoesNotAllocate: a tiny message claiming a
// payload of MaxRaw bytes must not make the decoder allocate that much.
func TestDecodeBatchHeaderClaimDoesNotAllocate(t *testing.T) {
	c := newCodec(t, wire.Limits{})
	msg := envelope{"KB", 1, wire.CompressionZstd, "g", "", 1, 1, 1, 32 << 20, []byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0}}.bytes()
	if _, err := c.DecodeBatch(msg); err == nil { // warm up the decoder
		t.Fatal("decoded garbage")
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 4 {
		if _, err := c.DecodeBatch(msg); !errors.Is(err, wire.ErrBadBatch) {
			t.Fatalf("err %v", err)
		}
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
		t.Errorf("4 decodes of a %d-byte message allocated %d MiB", len(msg), got>>20)
	}
}

// TestCodecConcurrent shares one codec between goroutines, as the uplink
// and hubd do; run with -race.
func TestCodecConcurrent(t *testing.T) {
	c := newCodec(t, wire.Limits{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			var scratch []byte
			for i := range 20 {
				first := uint64(g*1000 + i*10 + 1)
				es := testEntries(t, first, first+1, first+5)
				var msg []byte
				var err error
				msg, scratch, err = c.EncodeBatch("g", "b", first, first+9, es, scratch)
				if err != nil {
					t.Error(err)
					return
				}
				b, err := c.DecodeBatch(msg)
				if err != nil || len(b.Entries) != 3 || b.Entries[2].Seq != first+5 || !bytes.Equal(b.Entries[1].Raw, es[1].Raw) {
					t.Errorf("goroutine %d batch %d: %v", g, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
}
