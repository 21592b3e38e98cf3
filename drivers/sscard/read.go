package sscard

import (
	"context"
	"errors"
	"fmt"
)

// ReadCard reads the card in the slot following sscard.md §2.6: card status,
// power on, select the social security application, read EF05 and EF06,
// power off (also after a failure once powered).
//
// Errors: ErrNoCard (slot empty); ErrCardRemoved (the card left or went mute
// after power on); ErrWrongApplication (no SSSE, or no EF05/EF06: not a
// social security card); ErrLocked (application blocked); a *StatusError for
// any other status word (errors.As gives the SW); ErrMalformed (a record
// that does not follow §2.5); ErrTimeout, ErrOffline, ErrChecksum,
// *ReaderError from the reader; ErrClosed; ctx.Err(). No error text carries
// personal data.
func (r *Reader) ReadCard(ctx context.Context) (Card, error) {
	c, _, err := r.readCard(ctx)
	return c, err
}

func (r *Reader) readCard(ctx context.Context) (card Card, ev EventKind, err error) {
	if r.isClosed() {
		return Card{}, 0, ErrClosed
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &session{r: r, ctx: ctx}
	defer func() { err = r.closedErr(err); ev = s.ev }()

	present, err := r.t.Present(ctx)
	if s.track(err); err != nil {
		return Card{}, 0, err
	}
	if !present {
		return Card{}, 0, ErrNoCard
	}
	atr, err := r.t.PowerOn(ctx)
	if s.track(err); err != nil {
		return Card{}, 0, err
	}
	defer func() {
		// The card data is already read (or the read failed); a failing
		// power off changes neither, but it counts in health.
		s.track(r.t.PowerOff(context.WithoutCancel(ctx)))
	}()
	card, err = s.read()
	if err != nil {
		if errors.Is(err, ErrNoCard) {
			err = fmt.Errorf("%w (%w)", ErrCardRemoved, err)
		}
		return Card{}, 0, err
	}
	card.ATR = append([]byte(nil), atr...)
	card.Reader = r.opts.Name
	card.ReadAt = r.opts.Now()
	r.log.Debug("card read", "card", card)
	return card, 0, nil
}

// session is one powered read.
type session struct {
	r   *Reader
	ctx context.Context
	ev  EventKind // the last health transition seen
}

func (s *session) track(err error) {
	if e := s.r.track(err); e != 0 {
		s.ev = e
	}
}

// maxGetResponse bounds a chain of 61xx (§2.2).
const maxGetResponse = 8

// transmit sends cmd, following 61xx with GET RESPONSE and answering one 6Cxx
// by resending with the exact Le. It returns the response data of a 9000.
func (s *session) transmit(name string, cmd Command) ([]byte, error) {
	var out []byte
	retriedLe := false
	gets := 0
	apdu := cmd.Bytes()
	for {
		resp, err := s.r.t.Transmit(s.ctx, apdu)
		if s.track(err); err != nil {
			return nil, err
		}
		data, sw, err := ParseResponse(resp)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, data...)
		switch {
		case sw == 0x9000:
			return out, nil
		case sw>>8 == 0x61 && gets < maxGetResponse:
			gets++
			apdu = GetResponse(byte(sw)).Bytes()
		case sw>>8 == 0x6C && !retriedLe && cmd.Le >= 0:
			retriedLe = true
			c := cmd
			c.Le = int(sw & 0xFF)
			apdu = c.Bytes()
		default:
			return nil, CheckSW(name, sw)
		}
	}
}

// record reads record rec of the current EF and returns its value; a record
// that is absent (6A83) gives nil, nil when optional.
func (s *session) record(rec byte, optional bool) ([]byte, error) {
	name := fmt.Sprintf("read record %02X", rec)
	data, err := s.transmit(name, ReadRecord(rec, 0))
	if err != nil {
		var se *StatusError
		if optional && errors.As(err, &se) && se.SW == 0x6A83 {
			return nil, nil
		}
		return nil, err
	}
	items, err := ParseTLV(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	for _, it := range items {
		if it.Tag == rec {
			return it.Value, nil
		}
	}
	return nil, fmt.Errorf("%s: %w: tag %02X missing", name, ErrMalformed, rec)
}

// field reads one record and decodes it into *dst with dec.
func field[T any](s *session, rec byte, optional bool, dst *T, dec func([]byte) (T, error)) error {
	v, err := s.record(rec, optional)
	if err != nil || v == nil {
		return err
	}
	if *dst, err = dec(v); err != nil {
		return fmt.Errorf("record %02X: %w", rec, err)
	}
	return nil
}

func (s *session) read() (Card, error) {
	var c Card
	if _, err := s.transmit("select SSSE", SelectAID(SSSEAID)); err != nil {
		return Card{}, err
	}
	if _, err := s.transmit("select EF05", SelectFile(FileIssuer)); err != nil {
		return Card{}, err
	}
	for _, err := range []func() error{
		func() error { return field(s, 0x01, false, &c.CardID, decodeAN) },
		func() error { return field(s, 0x02, true, &c.CardType, decodeAN) },
		func() error { return field(s, 0x03, false, &c.SpecVersion, decodeAN) },
		func() error { return field(s, 0x05, true, &c.Issued, decodeDate) },
		func() error { return field(s, 0x06, true, &c.ValidUntil, decodeDate) },
		func() error { return field(s, 0x07, false, &c.CardNumber, decodeAN) },
	} {
		if err := err(); err != nil {
			return Card{}, err
		}
	}
	if len(c.CardID) < 6 || c.CardNumber == "" {
		return Card{}, fmt.Errorf("%w: card identification code or card number empty", ErrMalformed)
	}
	c.Region = c.CardID[:6]
	if _, err := s.transmit("select EF06", SelectFile(FileHolder)); err != nil {
		return Card{}, err
	}
	for _, err := range []func() error{
		func() error { return field(s, 0x08, false, &c.SSN, decodeAN) },
		func() error { return field(s, 0x09, false, &c.Name, decodeGBK) },
		func() error { return field(s, 0x0A, false, &c.Sex, decodeAN) },
		func() error { return field(s, 0x0B, true, &c.Ethnicity, decodeCN) },
		func() error { return field(s, 0x0D, true, &c.Birth, decodeDate) },
	} {
		if err := err(); err != nil {
			return Card{}, err
		}
	}
	if c.SSN == "" || c.Name == "" {
		return Card{}, fmt.Errorf("%w: social security number or name empty", ErrMalformed)
	}
	return c, nil
}
