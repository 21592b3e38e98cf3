package sscard

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kioskedge/kioskedge/drivers/devstatus"
	"github.com/kioskedge/kioskedge/drivers/serialport"
)

// Transport is the reader side of the card logic (sscard.md §1.5): one
// implementation per reader framing. Implementations return the package's
// sentinels for the conditions of §1.3 and §1.4 (ErrNoCard, ErrCardRemoved,
// ErrTimeout, ErrOffline, ErrChecksum). A Transport is used by one goroutine
// at a time.
type Transport interface {
	// Present reports whether a card is in the slot.
	Present(ctx context.Context) (bool, error)
	// PowerOn powers the card and returns its ATR.
	PowerOn(ctx context.Context) (atr []byte, err error)
	// PowerOff powers the card off.
	PowerOff(ctx context.Context) error
	// Transmit sends a command APDU and returns the response APDU (data,
	// SW1, SW2).
	Transmit(ctx context.Context, apdu []byte) (resp []byte, err error)
}

// FrameTransportOptions configure a FrameTransport. Zero values mean the
// defaults.
type FrameTransportOptions struct {
	// ResponseTimeout is how long to wait for a valid reply (default 1 s).
	ResponseTimeout time.Duration
	// Now is the clock the response deadline is measured on (default time.Now).
	Now func() time.Time
	// OnError is told of every frame skipped on the way to a reply, with a
	// devstatus kind ("framing", "checksum"). May be nil.
	OnError func(kind string)
}

// FrameTransport is the STX/LEN/BCC/ETX reader framing of sscard.md §1 over
// a serial port.
type FrameTransport struct {
	port    serialport.Port
	timeout time.Duration
	now     func() time.Time
	onError func(string)
	buf     []byte
	out     []byte
}

// readSlice bounds each port Read so the response deadline and ctx are
// checked often; it is not a protocol timeout.
const readSlice = 50 * time.Millisecond

// NewFrameTransport returns the §1 framing over port. It does not touch the
// port until the first call.
func NewFrameTransport(port serialport.Port, opts FrameTransportOptions) *FrameTransport {
	if opts.ResponseTimeout <= 0 {
		opts.ResponseTimeout = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.OnError == nil {
		opts.OnError = func(string) {}
	}
	return &FrameTransport{port: port, timeout: opts.ResponseTimeout, now: opts.Now, onError: opts.OnError}
}

// Present sends CARD STATUS; any status byte but "no card" counts as present.
// Errors: ErrTimeout, ErrOffline, ErrChecksum, *ReaderError, ctx.Err().
func (t *FrameTransport) Present(ctx context.Context) (bool, error) {
	data, err := t.command(ctx, CmdCardStatus, nil)
	if err != nil {
		if errors.Is(err, ErrNoCard) {
			return false, nil
		}
		return false, err
	}
	if len(data) != 1 {
		t.onError(devstatus.ErrFraming)
		return false, fmt.Errorf("%w: card status reply of %d bytes", ErrFraming, len(data))
	}
	return data[0] != 0, nil
}

// PowerOn sends POWER ON and returns the ATR. Errors as for Present, plus
// ErrNoCard and ErrCardRemoved (card mute).
func (t *FrameTransport) PowerOn(ctx context.Context) ([]byte, error) {
	return t.command(ctx, CmdPowerOn, nil)
}

// PowerOff sends POWER OFF. Errors as for Present.
func (t *FrameTransport) PowerOff(ctx context.Context) error {
	_, err := t.command(ctx, CmdPowerOff, nil)
	return err
}

// Transmit sends TRANSMIT APDU and returns the card's response APDU. Errors
// as for PowerOn.
func (t *FrameTransport) Transmit(ctx context.Context, apdu []byte) ([]byte, error) {
	return t.command(ctx, CmdTransmit, apdu)
}

// command runs one exchange, retrying once when the reader says our frame
// was corrupted (status 05).
func (t *FrameTransport) command(ctx context.Context, cmd byte, data []byte) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		status, reply, err := t.exchange(ctx, cmd, data)
		if err != nil {
			return nil, err
		}
		switch status {
		case StatusOK:
			return reply, nil
		case StatusNoCard:
			return nil, ErrNoCard
		case StatusCardMute:
			return nil, ErrCardRemoved
		case StatusBadChecksum:
			t.onError(devstatus.ErrChecksum)
			if attempt == 0 {
				continue
			}
			return nil, fmt.Errorf("%w: reader received a corrupted command twice", ErrChecksum)
		default:
			return nil, &ReaderError{Cmd: cmd, Status: status}
		}
	}
}

// exchange writes one command frame and reads frames until the reply to cmd
// arrives or the response timeout passes. Garbage, bad frames and replies to
// other commands are counted (framing/checksum) and skipped.
func (t *FrameTransport) exchange(ctx context.Context, cmd byte, data []byte) (status byte, reply []byte, err error) {
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	if err := t.port.ResetInputBuffer(); err != nil {
		return 0, nil, portErr("reset input", err)
	}
	t.buf = t.buf[:0]
	payload := append(append(make([]byte, 0, 1+len(data)), cmd), data...)
	t.out, err = AppendFrame(t.out[:0], payload)
	if err != nil {
		return 0, nil, err
	}
	if _, err := t.port.Write(t.out); err != nil {
		return 0, nil, portErr("write", err)
	}
	if err := t.port.SetReadTimeout(readSlice); err != nil {
		return 0, nil, portErr("set read timeout", err)
	}
	deadline := t.now().Add(t.timeout)
	var chunk [256]byte
	for {
		for len(t.buf) > 0 {
			p, n, perr := ParseFrame(t.buf)
			if errors.Is(perr, ErrShortFrame) {
				break
			}
			if perr != nil {
				if errors.Is(perr, ErrChecksum) {
					t.onError(devstatus.ErrChecksum)
				} else {
					t.onError(devstatus.ErrFraming)
				}
				t.buf = t.buf[:copy(t.buf, t.buf[n:])]
				continue
			}
			if len(p) < 2 || p[0] != cmd {
				// Too short for CMD+STATUS, or a late reply to another command.
				t.onError(devstatus.ErrFraming)
				t.buf = t.buf[:copy(t.buf, t.buf[n:])]
				continue
			}
			reply = append([]byte(nil), p[2:]...)
			status = p[1]
			t.buf = t.buf[:copy(t.buf, t.buf[n:])]
			return status, reply, nil
		}
		if err := ctx.Err(); err != nil {
			return 0, nil, err
		}
		if !t.now().Before(deadline) {
			return 0, nil, fmt.Errorf("%w: command %02X", ErrTimeout, cmd)
		}
		n, rerr := t.port.Read(chunk[:])
		t.buf = append(t.buf, chunk[:n]...)
		if len(t.buf) > 4*MaxPayload {
			// Cannot be one frame in progress: keep only the tail.
			t.onError(devstatus.ErrFraming)
			t.buf = t.buf[:copy(t.buf, t.buf[len(t.buf)-MaxPayload-5:])]
		}
		if rerr != nil && !serialport.IsTimeout(rerr) {
			return 0, nil, portErr("read", rerr)
		}
	}
}

// portErr maps a port failure to ErrOffline (device away or port closed) or
// wraps it as it is.
func portErr(op string, err error) error {
	if serialport.IsDisconnected(err) || serialport.IsClosed(err) || serialport.IsNotFound(err) {
		return fmt.Errorf("%w: %s: %w", ErrOffline, op, err)
	}
	return fmt.Errorf("sscard: %s: %w", op, err)
}
