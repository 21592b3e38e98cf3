package osdp

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/kioskedge/kioskedge/drivers/credential"
	"github.com/kioskedge/kioskedge/drivers/devstatus"
	"github.com/kioskedge/kioskedge/drivers/serialport"
)

// ReaderConfig describes one PD on the bus.
type ReaderConfig struct {
	Address byte   // 0x00–0x7E
	Name    string // the reader's name in credentials, events and health
	// Checksum selects the 8-bit checksum instead of CRC-16 for readers
	// that lack CRC support (osdp.md §8).
	Checksum bool
	// Key is the reader's own 16-byte SCBK. Nil with Install false means no
	// secure channel.
	Key []byte
	// Install says the reader may still be in install mode: the CP opens
	// the channel with SCBK-D, sends osdp_KEYSET with Key, and reopens the
	// channel with Key (osdp.md §6.6). If SCBK-D is refused it tries Key.
	Install bool
	// RequireSecure refuses to talk to the reader in plaintext: when the
	// channel cannot be opened the reader is "refused" (no polling, no card
	// reads) and the handshake is retried with back-off. When false, a
	// failed handshake falls back to plaintext with a warning.
	RequireSecure bool
}

// Options configures a CP. Zero values pick the defaults in brackets.
type Options struct {
	Readers      []ReaderConfig
	ReplyTimeout time.Duration // wait for a reply [200 ms]
	Retries      int           // resends of an unanswered command [2]; negative means none
	PollInterval time.Duration // pause between bus cycles [50 ms]
	DownAfter    int           // failed exchanges in a row before a reader is offline [3]
	// OfflineBackoff is the first interval between probes of an offline or
	// refused reader; it doubles up to MaxOfflineBackoff [1 s, 16 s].
	OfflineBackoff, MaxOfflineBackoff time.Duration
	// Now is the clock for back-off, credential times and health [time.Now].
	Now func() time.Time
	// Rand supplies RND.A for the secure channel [crypto/rand].
	Rand io.Reader
	// Logger receives state changes (never card numbers) [discard].
	Logger *slog.Logger
	// OnCredential receives card reads and keypad entries, from the
	// polling goroutine; it must not block long.
	OnCredential func(credential.Credential)
	// OnEvent receives reader events, from the polling goroutine.
	OnEvent func(Event)
	// QueueLen bounds each reader's queue of output commands [16].
	QueueLen int
}

// EventKind says what an Event reports.
type EventKind string

// Event kinds.
const (
	EventOnline        EventKind = "online"         // the reader answered after being new or offline
	EventOffline       EventKind = "offline"        // DownAfter exchanges failed in a row
	EventLocalStatus   EventKind = "local-status"   // osdp_LSTATR: Tamper, Power
	EventSecure        EventKind = "secure"         // the secure channel is open
	EventSecureRefused EventKind = "secure-refused" // the handshake failed; Err says why
	EventPlaintext     EventKind = "plaintext"      // fell back to plaintext (RequireSecure false)
	EventKeySet        EventKind = "key-set"        // osdp_KEYSET done (Err nil) or failed
	EventNAK           EventKind = "nak"            // an output command was refused; Err is *NAKError
)

// Event is something a reader reported or that happened to it.
type Event struct {
	Kind   EventKind
	Reader string
	Addr   byte
	Time   time.Time
	Tamper bool  // EventLocalStatus
	Power  bool  // EventLocalStatus: power failure
	Err    error // EventSecureRefused, EventKeySet, EventNAK
}

// ReaderStatus is a snapshot of one reader's protocol state.
type ReaderStatus struct {
	Online       bool
	Secure       bool // a secure channel is open
	Refused      bool // RequireSecure and no channel
	Identity     *Identity
	Capabilities []Capability
	Health       devstatus.Snapshot
}

type command struct {
	code byte
	data []byte
	key  *[16]byte // KEYSET: the new key
}

type reader struct {
	cfg     ReaderConfig
	health  *devstatus.Tracker
	key     *[16]byte // current SCBK, nil for none
	install bool

	// owned by the polling goroutine
	seq        byte
	fresh      bool // the next command goes with SQN 0
	identified bool
	capsDone   bool
	online     bool
	everOnline bool // answered once, or gave up on at startup: probe with back-off
	session    *Session
	plaintext  bool // gave up on the channel (RequireSecure false)
	refused    bool
	nextProbe  time.Time
	backoff    time.Duration

	mu     sync.Mutex // guards the fields below and queue
	queue  []command
	status ReaderStatus
}

// CP is an OSDP control panel driving the readers of one bus.
type CP struct {
	port    serialport.Port
	opts    Options
	log     *slog.Logger
	readers []*reader
	byAddr  map[byte]*reader
	framer  Framer
	buf     []byte
	wake    chan struct{}

	closeOnce sync.Once
	closeErr  error
	running   sync.Mutex // held by Run
	portUp    bool
}

// New validates opts and returns a CP that will drive port; it takes
// ownership of port (Close closes it). It fails when there are no readers,
// an address is out of range or repeated, a Key is not 16 bytes, Install is
// set without a Key, or RequireSecure is set with neither. It does no I/O.
func New(port serialport.Port, opts Options) (*CP, error) {
	if port == nil {
		return nil, errors.New("osdp: nil port")
	}
	if len(opts.Readers) == 0 {
		return nil, errors.New("osdp: no readers configured")
	}
	if opts.ReplyTimeout <= 0 {
		opts.ReplyTimeout = 200 * time.Millisecond
	}
	if opts.Retries == 0 {
		opts.Retries = 2
	} else if opts.Retries < 0 {
		opts.Retries = 0
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 50 * time.Millisecond
	}
	if opts.DownAfter <= 0 {
		opts.DownAfter = 3
	}
	if opts.OfflineBackoff <= 0 {
		opts.OfflineBackoff = time.Second
	}
	if opts.MaxOfflineBackoff < opts.OfflineBackoff {
		opts.MaxOfflineBackoff = max(16*time.Second, opts.OfflineBackoff)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.QueueLen <= 0 {
		opts.QueueLen = 16
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cp := &CP{port: port, opts: opts, log: log.With("component", "osdp"), byAddr: map[byte]*reader{},
		buf: make([]byte, 512), wake: make(chan struct{}, 1)}
	for _, rc := range opts.Readers {
		if rc.Address >= Broadcast {
			return nil, fmt.Errorf("osdp: reader address %#x out of range", rc.Address)
		}
		if cp.byAddr[rc.Address] != nil {
			return nil, fmt.Errorf("osdp: reader address %#x configured twice", rc.Address)
		}
		if rc.Key != nil && len(rc.Key) != 16 {
			return nil, fmt.Errorf("osdp: reader %#x: key must be 16 bytes", rc.Address)
		}
		if (rc.Install || rc.RequireSecure) && rc.Key == nil {
			return nil, fmt.Errorf("osdp: reader %#x: install mode and secure-only need a Key", rc.Address)
		}
		if rc.Name == "" {
			rc.Name = fmt.Sprintf("osdp-%02x", rc.Address)
		}
		r := &reader{cfg: rc, health: devstatus.New(rc.Name, "osdp", opts.DownAfter, opts.Now), install: rc.Install, fresh: true}
		if rc.Key != nil {
			var k [16]byte
			copy(k[:], rc.Key)
			r.key = &k
		}
		cp.readers = append(cp.readers, r)
		cp.byAddr[rc.Address] = r
	}
	return cp, nil
}

// Close closes the port, which ends a running Run. It is idempotent; later
// calls return the first call's result.
func (cp *CP) Close() error {
	cp.closeOnce.Do(func() { cp.closeErr = cp.port.Close() })
	return cp.closeErr
}

func (cp *CP) enqueue(addr byte, c command) error {
	r := cp.byAddr[addr]
	if r == nil {
		return fmt.Errorf("%w: %#x", ErrUnknownReader, addr)
	}
	r.mu.Lock()
	if len(r.queue) >= cp.opts.QueueLen {
		r.mu.Unlock()
		return ErrQueueFull
	}
	r.queue = append(r.queue, c)
	r.mu.Unlock()
	select {
	case cp.wake <- struct{}{}:
	default:
	}
	return nil
}

// LED queues an osdp_LED command for the reader at addr; the polling loop
// sends it before the reader's next poll. It returns ErrUnknownReader or
// ErrQueueFull; a NAK or a failure to deliver is reported as EventNAK or by
// the reader's health, not here.
func (cp *CP) LED(addr byte, c LEDCommand) error {
	return cp.enqueue(addr, command{code: CmdLED, data: c.Encode()})
}

// Buzzer queues an osdp_BUZ command; see LED for errors.
func (cp *CP) Buzzer(addr byte, c BuzzerCommand) error {
	return cp.enqueue(addr, command{code: CmdBUZ, data: c.Encode()})
}

// Text queues an osdp_TEXT command; see LED for errors.
func (cp *CP) Text(addr byte, c TextCommand) error {
	return cp.enqueue(addr, command{code: CmdTEXT, data: c.Encode()})
}

// SetKey queues a key rotation: once a secure channel is open the CP sends
// osdp_KEYSET with key, and on ACK uses key from then on and reopens the
// channel with it. The outcome is reported as EventKeySet. It returns
// ErrUnknownReader or ErrQueueFull.
func (cp *CP) SetKey(addr byte, key [16]byte) error {
	return cp.enqueue(addr, command{code: CmdKEYSET, data: KeysetData(key), key: &key})
}

// Status returns the reader's protocol state and health, or
// ErrUnknownReader.
func (cp *CP) Status(addr byte) (ReaderStatus, error) {
	r := cp.byAddr[addr]
	if r == nil {
		return ReaderStatus{}, fmt.Errorf("%w: %#x", ErrUnknownReader, addr)
	}
	r.mu.Lock()
	s := r.status
	r.mu.Unlock()
	s.Health = r.health.Snapshot()
	return s, nil
}

// Health returns every reader's health, in configuration order.
func (cp *CP) Health() []devstatus.Snapshot {
	out := make([]devstatus.Snapshot, len(cp.readers))
	for i, r := range cp.readers {
		out[i] = r.health.Snapshot()
	}
	return out
}

func (r *reader) publish() {
	r.mu.Lock()
	r.status.Online = r.online
	r.status.Secure = r.session != nil
	r.status.Refused = r.refused
	r.mu.Unlock()
}

func (cp *CP) event(r *reader, e Event) {
	e.Reader, e.Addr, e.Time = r.cfg.Name, r.cfg.Address, cp.opts.Now()
	if cp.opts.OnEvent != nil {
		cp.opts.OnEvent(e)
	}
}

// Run polls the bus until ctx ends (it returns nil) or the port is closed
// (it returns ErrClosed). Only one Run may be active; a second concurrent
// call returns an error at once. While the port is disconnected Run keeps
// retrying, marking every reader not connected; when writes succeed again
// every reader is re-interrogated from SQN 0.
func (cp *CP) Run(ctx context.Context) error {
	if !cp.running.TryLock() {
		return errors.New("osdp: Run already active")
	}
	defer cp.running.Unlock()
	if err := cp.port.SetReadTimeout(cp.opts.ReplyTimeout); err != nil && serialport.IsClosed(err) {
		return ErrClosed
	}
	cp.setConnected(true)
	for ctx.Err() == nil {
		for _, r := range cp.readers {
			if ctx.Err() != nil {
				break
			}
			if err := cp.service(ctx, r); err != nil {
				if serialport.IsClosed(err) {
					return ErrClosed
				}
				if serialport.IsDisconnected(err) {
					cp.setConnected(false)
					break
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-cp.wake:
		case <-time.After(cp.opts.PollInterval):
		}
	}
	return nil
}

func (cp *CP) setConnected(up bool) {
	if up == cp.portUp {
		return
	}
	cp.portUp = up
	if up {
		cp.log.Info("bus up")
	} else {
		cp.log.Warn("bus disconnected")
	}
	for _, r := range cp.readers {
		r.health.Connected(up)
		if !up {
			cp.resetReader(r)
			r.online, r.nextProbe = false, time.Time{}
			r.publish()
		}
	}
	cp.framer.Reset()
}

// resetReader forgets the reader's protocol state: SQN 0, interrogation
// and channel again.
func (cp *CP) resetReader(r *reader) {
	r.fresh, r.identified, r.capsDone, r.session, r.plaintext = true, false, false, nil, false
}

func (cp *CP) wantSecure(r *reader) bool { return r.key != nil && !r.plaintext }

// service does the reader's next exchange(s). It returns port errors only.
func (cp *CP) service(ctx context.Context, r *reader) error {
	now := cp.opts.Now()
	if (!r.online && r.everOnline || r.refused) && now.Before(r.nextProbe) {
		return nil
	}
	var err error
	switch {
	case !r.identified:
		err = cp.interrogate(ctx, r, CmdID)
	case !r.capsDone:
		err = cp.interrogate(ctx, r, CmdCAP)
	case cp.wantSecure(r) && r.session == nil:
		err = cp.openChannel(ctx, r)
	default:
		err = cp.next(ctx, r)
	}
	if err == nil {
		return nil
	}
	if isPortErr(err) {
		return err
	}
	if errors.Is(err, ErrTimeout) {
		if r.health.Failed(devstatus.ErrTimeout) || (r.online && r.health.Down()) {
			cp.goOffline(r)
		} else if !r.online && r.everOnline {
			cp.scheduleProbe(r)
		}
	}
	return nil
}

func isPortErr(err error) bool {
	_, ok := serialport.CodeOf(err)
	return ok
}

func (cp *CP) scheduleProbe(r *reader) {
	if r.backoff == 0 {
		r.backoff = cp.opts.OfflineBackoff
	} else {
		r.backoff = min(2*r.backoff, cp.opts.MaxOfflineBackoff)
	}
	r.nextProbe = cp.opts.Now().Add(r.backoff)
}

func (cp *CP) goOffline(r *reader) {
	wasOnline := r.online || !r.everOnline
	r.online = false
	r.everOnline = true // a reader that never answered is probed with back-off too
	cp.resetReader(r)
	cp.scheduleProbe(r)
	r.publish()
	if wasOnline {
		cp.log.Warn("reader offline", "reader", r.cfg.Name)
		cp.event(r, Event{Kind: EventOffline})
	}
}

// answered records a good exchange and brings an offline reader online.
func (cp *CP) answered(r *reader) {
	r.health.Seen()
	if !r.online {
		r.online, r.everOnline, r.backoff = true, true, 0
		r.publish()
		cp.log.Info("reader online", "reader", r.cfg.Name)
		cp.event(r, Event{Kind: EventOnline})
	}
}

func (cp *CP) interrogate(ctx context.Context, r *reader, code byte) error {
	rep, err := cp.exchange(ctx, r, code, []byte{0x00}, nil)
	if err != nil {
		return err
	}
	switch {
	case code == CmdID && rep.Code == ReplyPDID:
		id, err := ParseIdentity(rep.Data)
		if err != nil {
			r.health.Error(devstatus.ErrFraming)
			return err
		}
		r.mu.Lock()
		r.status.Identity = &id
		r.mu.Unlock()
		r.identified = true
	case code == CmdCAP && rep.Code == ReplyPDCAP:
		caps, err := ParseCapabilities(rep.Data)
		if err != nil {
			r.health.Error(devstatus.ErrFraming)
			return err
		}
		r.mu.Lock()
		r.status.Capabilities = caps
		r.mu.Unlock()
		r.capsDone = true
	case rep.Code == ReplyNAK:
		// A reader that does not implement ID or CAP is still usable.
		r.identified, r.capsDone = r.identified || code == CmdID, r.capsDone || code == CmdCAP
	default:
		return cp.unexpected(r, rep)
	}
	return nil
}

func (cp *CP) unexpected(r *reader, rep Packet) error {
	r.health.Error(devstatus.ErrFraming)
	return fmt.Errorf("%w: %#02x", ErrUnexpected, rep.Code)
}

// openChannel runs the handshake (osdp.md §6.2). In install mode it tries
// SCBK-D first, then the reader's key.
func (cp *CP) openChannel(ctx context.Context, r *reader) error {
	var err error
	if r.install {
		if err = cp.handshake(ctx, r, DefaultSCBK, true); err == nil || isPortErr(err) || errors.Is(err, ErrTimeout) {
			return err
		}
		cp.log.Info("install key refused, trying the reader's key", "reader", r.cfg.Name)
	}
	if err = cp.handshake(ctx, r, *r.key, false); err == nil || isPortErr(err) || errors.Is(err, ErrTimeout) {
		return err
	}
	if r.cfg.RequireSecure {
		if !r.refused {
			cp.log.Warn("secure channel refused; reader not used", "reader", r.cfg.Name, "err", err)
		}
		r.refused = true
		r.health.SetDetail("secure channel refused")
		r.publish()
		cp.scheduleProbe(r)
		cp.event(r, Event{Kind: EventSecureRefused, Err: err})
		return nil
	}
	cp.log.Warn("secure channel failed; continuing in plaintext", "reader", r.cfg.Name, "err", err)
	r.plaintext = true
	r.health.SetDetail("plaintext (secure channel failed)")
	cp.event(r, Event{Kind: EventSecureRefused, Err: err})
	cp.event(r, Event{Kind: EventPlaintext})
	return nil
}

func (cp *CP) handshake(ctx context.Context, r *reader, scbk [16]byte, isDefault bool) error {
	var rndA [8]byte
	if _, err := io.ReadFull(cp.opts.Rand, rndA[:]); err != nil {
		return fmt.Errorf("osdp: random: %w", err)
	}
	sel := byte(1)
	if isDefault {
		sel = 0
	}
	rep, err := cp.exchange(ctx, r, CmdCHLNG, rndA[:], []byte{3, SCS11, sel})
	if err != nil {
		return err
	}
	if rep.Code == ReplyNAK {
		return fmt.Errorf("%w: %w", ErrSecureRefused, nakErr(r, CmdCHLNG, rep))
	}
	if rep.Code != ReplyCCRYPT || rep.SCBType() != SCS12 || len(rep.Data) != 32 {
		return fmt.Errorf("%w: bad osdp_CCRYPT", ErrSecureRefused)
	}
	var rndB [8]byte
	copy(rndB[:], rep.Data[8:16])
	keys := DeriveSessionKeys(scbk, rndA)
	cc := ClientCryptogram(keys, rndA, rndB)
	if subtle.ConstantTimeCompare(cc[:], rep.Data[16:32]) != 1 {
		return ErrBadCryptogram
	}
	sc := ServerCryptogram(keys, rndA, rndB)
	rep, err = cp.exchange(ctx, r, CmdSCRYPT, sc[:], []byte{3, SCS13, sel})
	if err != nil {
		return err
	}
	if rep.Code == ReplyNAK {
		return fmt.Errorf("%w: %w", ErrSecureRefused, nakErr(r, CmdSCRYPT, rep))
	}
	want := InitialRMAC(keys, sc)
	if rep.Code != ReplyRMACI || rep.SCBType() != SCS14 || len(rep.SCB) != 3 || rep.SCB[2] != 0x01 ||
		subtle.ConstantTimeCompare(rep.Data, want[:]) != 1 {
		return fmt.Errorf("%w: osdp_RMAC_I not accepted", ErrSecureRefused)
	}
	r.session = NewSession(keys, want)
	r.refused, r.backoff = false, 0
	mode := "secure channel"
	if isDefault {
		mode = "secure channel (install key)"
	}
	r.health.SetDetail(mode)
	r.publish()
	cp.log.Info("secure channel open", "reader", r.cfg.Name, "install_key", isDefault)
	cp.event(r, Event{Kind: EventSecure})
	if isDefault {
		// Install mode: move the reader to its own key at once.
		return cp.keyset(ctx, r, *r.key)
	}
	return nil
}

func (cp *CP) keyset(ctx context.Context, r *reader, key [16]byte) error {
	rep, err := cp.exchange(ctx, r, CmdKEYSET, KeysetData(key), nil)
	if err == nil && rep.Code == ReplyNAK {
		err = nakErr(r, CmdKEYSET, rep)
	} else if err == nil && rep.Code != ReplyACK {
		err = cp.unexpected(r, rep)
	}
	if err != nil {
		cp.event(r, Event{Kind: EventKeySet, Err: err})
		return err
	}
	k := key
	r.key, r.install = &k, false
	r.session = nil // reopen with the new key
	r.publish()
	cp.log.Info("reader key set", "reader", r.cfg.Name)
	cp.event(r, Event{Kind: EventKeySet})
	return nil
}

func nakErr(r *reader, cmd byte, rep Packet) *NAKError {
	e := &NAKError{Addr: r.cfg.Address, Command: cmd}
	if len(rep.Data) > 0 {
		e.Code, e.Data = rep.Data[0], append([]byte(nil), rep.Data[1:]...)
	}
	return e
}

// next sends the oldest queued command, or osdp_POLL.
func (cp *CP) next(ctx context.Context, r *reader) error {
	r.mu.Lock()
	var c *command
	if len(r.queue) > 0 {
		c = &r.queue[0]
		// KEYSET waits for a channel; plaintext keys are never sent.
		if c.key != nil && r.session == nil {
			c = nil
		}
	}
	r.mu.Unlock()
	if c == nil {
		return cp.poll(ctx, r)
	}
	var err error
	if c.key != nil {
		err = cp.keyset(ctx, r, *c.key)
	} else {
		var rep Packet
		rep, err = cp.exchange(ctx, r, c.code, c.data, nil)
		switch {
		case err != nil:
		case rep.Code == ReplyNAK:
			nak := nakErr(r, c.code, rep)
			r.health.Error(devstatus.ErrNAK)
			cp.event(r, Event{Kind: EventNAK, Err: nak})
		case rep.Code != ReplyACK:
			cp.handleEvent(r, rep)
		}
	}
	if errors.Is(err, ErrTimeout) || isPortErr(err) {
		return err // keep the command for the next try
	}
	r.mu.Lock()
	r.queue = r.queue[1:]
	r.mu.Unlock()
	return err
}

func (cp *CP) poll(ctx context.Context, r *reader) error {
	rep, err := cp.exchange(ctx, r, CmdPOLL, nil, nil)
	if err != nil {
		return err
	}
	cp.handleEvent(r, rep)
	return nil
}

// handleEvent turns a poll reply into a credential or an event.
func (cp *CP) handleEvent(r *reader, rep Packet) {
	now := cp.opts.Now()
	var cred *credential.Credential
	var err error
	switch rep.Code {
	case ReplyACK:
		return
	case ReplyRAW:
		var c RawCard
		if c, err = ParseRaw(rep.Data); err == nil {
			cred = &credential.Credential{Kind: credential.OSDP, Reader: r.cfg.Name, Time: now, Encoding: "osdp-raw",
				Bits: c.Bits, Raw: c.Data, Number: strings.ToUpper(fmt.Sprintf("%x", c.Data))}
		}
	case ReplyFMT:
		var c FormattedCard
		if c, err = ParseFormatted(rep.Data); err == nil {
			cred = &credential.Credential{Kind: credential.OSDP, Reader: r.cfg.Name, Time: now, Encoding: "osdp-formatted",
				Raw: []byte(c.Text), Number: c.Text}
		}
	case ReplyKEYPAD:
		var k Keypad
		if k, err = ParseKeypad(rep.Data); err == nil {
			cred = &credential.Credential{Kind: credential.Keypad, Reader: r.cfg.Name, Time: now,
				Raw: []byte(k.Keys), Number: strings.TrimSuffix(k.Keys, "#")}
		}
	case ReplyLSTATR:
		var s LocalStatus
		if s, err = ParseLocalStatus(rep.Data); err == nil {
			cp.log.Info("local status", "reader", r.cfg.Name, "tamper", s.Tamper, "power_failure", s.Power)
			cp.event(r, Event{Kind: EventLocalStatus, Tamper: s.Tamper, Power: s.Power})
		}
	case ReplyNAK:
		r.health.Error(devstatus.ErrNAK)
		cp.event(r, Event{Kind: EventNAK, Err: nakErr(r, CmdPOLL, rep)})
	default:
		err = fmt.Errorf("%w: %#02x", ErrUnexpected, rep.Code)
	}
	if err != nil {
		r.health.Error(devstatus.ErrFraming)
		cp.log.Warn("bad reply data", "reader", r.cfg.Name, "code", rep.Code, "err", err)
		return
	}
	if cred != nil {
		cp.log.Debug("credential", "credential", *cred)
		if cp.opts.OnCredential != nil {
			cp.opts.OnCredential(*cred)
		}
	}
}

// exchange sends one command (sealed when a channel is open and the
// command is not part of the handshake) and returns the reply, opened.
// It resends the same bytes with the same SQN on a timeout (Retries
// times) and on osdp_BUSY. Errors: port errors (serialport), ErrTimeout
// after the last try, *NAKError is not an error here (the reply is
// returned), ErrBadMAC/ErrNotSecure when the channel breaks (the channel
// is dropped and will be reopened).
func (cp *CP) exchange(ctx context.Context, r *reader, code byte, data, scb []byte) (Packet, error) {
	seq := r.seq%3 + 1
	if r.fresh {
		seq = 0
	}
	p := Packet{Addr: r.cfg.Address, Seq: seq, CRC: !r.cfg.Checksum, Code: code, Data: data, SCB: scb}
	var raw []byte
	var err error
	sealed := r.session != nil && scb == nil
	if sealed {
		raw, err = r.session.SealCommand(p)
	} else {
		raw, err = Encode(p)
	}
	if err != nil {
		return Packet{}, err
	}
	busy := 0
	for attempt := 0; attempt <= cp.opts.Retries; attempt++ {
		if ctx.Err() != nil {
			return Packet{}, ctx.Err()
		}
		if _, err := cp.port.Write(raw); err != nil {
			r.health.Error(devstatus.ErrIO)
			return Packet{}, err
		}
		cp.setConnected(true)
		rep, rawRep, err := cp.readReply(ctx, r, seq)
		if errors.Is(err, ErrTimeout) {
			continue
		}
		if err != nil {
			return Packet{}, err
		}
		if rep.Code == ReplyBUSY && rep.SCB == nil {
			// osdp.md §4.2: resend the same command; BUSY does not advance
			// the sequence or the MAC chain.
			if busy++; busy < 10 {
				attempt--
			}
			continue
		}
		r.seq, r.fresh = seq, false
		cp.answered(r)
		if sealed {
			open, err := r.session.OpenReply(rawRep, rep)
			if err != nil {
				if errors.Is(err, ErrNotSecure) && rep.Code == ReplyNAK {
					// The reader lost the channel (reset, key change):
					// reopen it before anything else.
					r.session = nil
					r.publish()
					return rep, nil
				}
				r.health.Error(devstatus.ErrChecksum)
				r.session = nil
				r.fresh = true
				r.publish()
				cp.log.Warn("secure reply rejected; reopening channel", "reader", r.cfg.Name, "err", err)
				return Packet{}, err
			}
			rep = open
		}
		if rep.Code == ReplyNAK && len(rep.Data) > 0 && rep.Data[0] == NAKSequence {
			r.fresh = true
		}
		return rep, nil
	}
	// The reader may have missed the command or we its reply: start again
	// from SQN 0, which also ends any secure channel at the reader.
	r.fresh = true
	if r.session != nil {
		r.session = nil
		r.publish()
	}
	if busy > 0 {
		return Packet{}, ErrBusy
	}
	return Packet{}, ErrTimeout
}

// readReply reads until a reply from r with sequence seq arrives or the
// reply timeout passes (ErrTimeout). Skipped noise and bad packets are
// counted on the reader's health; echoes of our own commands and replies
// for other addresses or stale sequence numbers are skipped.
func (cp *CP) readReply(ctx context.Context, r *reader, seq byte) (Packet, []byte, error) {
	deadline := time.Now().Add(cp.opts.ReplyTimeout)
	for {
		for {
			p, raw, skipped, ferr, ok := cp.framer.Next()
			if skipped > 0 || ferr != nil {
				kind := devstatus.ErrFraming
				if errors.Is(ferr, ErrBadCRC) || errors.Is(ferr, ErrBadChecksum) {
					kind = devstatus.ErrChecksum
				}
				r.health.Error(kind)
			}
			if !ok {
				break
			}
			if !p.Reply {
				continue // our own command echoed by a half-duplex adapter
			}
			if p.Addr != r.cfg.Address || p.Seq != seq {
				r.health.Error(devstatus.ErrFraming)
				continue
			}
			return p, raw, nil
		}
		left := time.Until(deadline)
		if left <= 0 || ctx.Err() != nil {
			if n := cp.framer.Buffered(); n > 0 {
				r.health.Error(devstatus.ErrFraming) // a partial packet that never completed
				cp.framer.Reset()
			}
			return Packet{}, nil, ErrTimeout
		}
		if err := cp.port.SetReadTimeout(left); err != nil {
			return Packet{}, nil, err
		}
		n, err := cp.port.Read(cp.buf)
		if n > 0 {
			cp.framer.Write(cp.buf[:n])
		}
		if err != nil && !serialport.IsTimeout(err) {
			r.health.Error(devstatus.ErrIO)
			return Packet{}, nil, err
		}
	}
}
