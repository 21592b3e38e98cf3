package sscard

import (
	"context"
	"errors"
)

// Run watches the slot until ctx ends or the Reader is closed: every
// PollInterval it asks the reader for the card status, reads a newly
// inserted card once, and reports CardInserted, CardRead / CardReadFailed,
// CardRemoved, ReaderDown and ReaderUp through Options.OnEvent. A reader that
// stops answering is marked down after DownAfter failed polls and polled
// again at the same interval (the probe); a Reader from Open reconnects by
// itself meanwhile. Run returns nil when ctx ends and ErrClosed when the
// Reader is closed; it starts no goroutine.
//
// A read that fails for a card reason (wrong application, locked, malformed,
// a status word) is not retried until the card is removed and inserted
// again; a read that fails for a reader reason (timeout, offline, checksum)
// is retried at the next poll. When the reader goes away (offline, or
// marked down) a card in the slot is reported removed, and read again once
// the reader answers, since it may have been swapped meanwhile.
func (r *Reader) Run(ctx context.Context) error {
	inSlot := false // a card is in the slot and has been dealt with
	for {
		ok, ev, err := r.present(ctx)
		r.emitHealth(ev, err)
		switch {
		case errors.Is(err, ErrClosed):
			return ErrClosed
		case ctx.Err() != nil:
			return nil
		case err != nil:
			r.log.Debug("card status failed", "err", err)
			if inSlot && (ev == ReaderDown || errors.Is(err, ErrOffline)) {
				// The card may be swapped while we cannot see the slot.
				inSlot = false
				r.emit(Event{Kind: CardRemoved})
			}
		case ok && !inSlot:
			r.emit(Event{Kind: CardInserted})
			card, ev, err := r.readCard(ctx)
			r.emitHealth(ev, err)
			switch {
			case err == nil:
				inSlot = true
				r.log.Info("card read", "card", card)
				r.emit(Event{Kind: CardRead, Card: card})
			case ctx.Err() != nil || errors.Is(err, ErrClosed):
			case errors.Is(err, ErrNoCard), errors.Is(err, ErrCardRemoved):
				r.log.Info("card removed during the read", "err", err)
				r.emit(Event{Kind: CardReadFailed, Err: err})
				r.emit(Event{Kind: CardRemoved})
			case cardFault(err):
				inSlot = true
				r.log.Info("card read failed", "err", err)
				r.emit(Event{Kind: CardReadFailed, Err: err})
			default:
				r.log.Debug("card read failed, will retry", "err", err)
				r.emit(Event{Kind: CardReadFailed, Err: err})
			}
		case !ok && inSlot:
			inSlot = false
			r.emit(Event{Kind: CardRemoved})
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.closed:
			return ErrClosed
		case <-r.opts.After(r.opts.PollInterval):
		}
	}
}

// cardFault reports whether err is about the card rather than the reader.
func cardFault(err error) bool {
	var se *StatusError
	return errors.As(err, &se) || errors.Is(err, ErrMalformed)
}

func (r *Reader) emitHealth(ev EventKind, err error) {
	switch ev {
	case ReaderDown:
		r.emit(Event{Kind: ReaderDown, Err: err})
	case ReaderUp:
		r.emit(Event{Kind: ReaderUp})
	}
}

func (r *Reader) emit(e Event) {
	e.Time = r.opts.Now()
	r.opts.OnEvent(e)
}
