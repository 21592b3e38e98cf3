package localapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// CardReadRequest is POST /v1/cards/read's body.
type CardReadRequest struct {
	Reader    string `json:"reader"`
	TimeoutMS int    `json:"timeout_ms"` // wait this long for a card; 0 = DefaultCardTimeout
}

// CardReadResponse is its 200 body.
type CardReadResponse struct {
	Reader string `json:"reader"`
	Card
}

func (s *Server) postCardRead(w http.ResponseWriter, r *http.Request) {
	raw, err := s.readBody(w, r)
	if err != nil {
		bodyError(w, err)
		return
	}
	var req CardReadRequest
	if err := decodeStrict(raw, &req); err != nil {
		bodyError(w, err)
		return
	}
	rd, ok := s.o.Readers[req.Reader]
	if !ok {
		writeError(w, http.StatusBadRequest, "unknown_reader", fmt.Sprintf("reader: %q is not a configured card reader", req.Reader))
		return
	}
	timeout := DefaultCardTimeout
	switch {
	case req.TimeoutMS < 0 || time.Duration(req.TimeoutMS)*time.Millisecond > MaxCardTimeout:
		writeError(w, http.StatusBadRequest, "invalid", fmt.Sprintf("timeout_ms: out of range 0..%d", MaxCardTimeout.Milliseconds()))
		return
	case req.TimeoutMS > 0:
		timeout = time.Duration(req.TimeoutMS) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	card, err := readCard(ctx, rd)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, CardReadResponse{Reader: req.Reader, Card: card})
	case errors.Is(err, ErrNoCard):
		writeError(w, http.StatusNotFound, "no_card", fmt.Sprintf("no card was presented within %d ms", timeout.Milliseconds()))
	case errors.Is(err, ErrReaderOffline):
		writeError(w, http.StatusServiceUnavailable, "reader_offline", "the reader is offline")
	case errors.Is(err, ErrCardTimeout):
		writeError(w, http.StatusGatewayTimeout, "reader_timeout", "the reader did not answer")
	case errors.Is(err, ErrCardUnreadable):
		writeError(w, http.StatusUnprocessableEntity, "card_unreadable", "the card could not be read; present it again")
	default:
		// Driver errors carry no personal data (drivers' ReadCard docs).
		s.log.Warn("card read failed", "reader", req.Reader, "err", err)
		writeError(w, http.StatusBadGateway, "reader_error", "the reader failed")
	}
}

// readCard polls rd until a card is read, a non-"no card" error, or ctx
// ends (then ErrNoCard, or the last reader error).
func readCard(ctx context.Context, rd CardReader) (Card, error) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		c, err := rd.ReadCard(ctx)
		if err == nil {
			return c, nil
		}
		if ctx.Err() != nil {
			if errors.Is(err, ErrCardTimeout) || errors.Is(err, ErrReaderOffline) {
				return Card{}, err
			}
			return Card{}, ErrNoCard
		}
		if !errors.Is(err, ErrNoCard) {
			return Card{}, err
		}
		t.Reset(cardRetryInterval)
		select {
		case <-ctx.Done():
			return Card{}, ErrNoCard
		case <-t.C:
		}
	}
}

// PrintResponse is POST /v1/print's 200 body; with an error it also
// carries the status next to "error".
type PrintResponse struct {
	Status PrinterStatus `json:"status"`
}

func (s *Server) postPrint(w http.ResponseWriter, r *http.Request) {
	raw, err := s.readBody(w, r)
	if err != nil {
		bodyError(w, err)
		return
	}
	var req Receipt
	if err := decodeStrict(raw, &req); err != nil {
		bodyError(w, err)
		return
	}
	if req.Title == "" && len(req.Lines) == 0 && req.QR == "" {
		writeError(w, http.StatusBadRequest, "invalid", "lines: a receipt needs a title, lines or a qr")
		return
	}
	if len(req.Lines) > 500 {
		writeError(w, http.StatusBadRequest, "invalid", "lines: more than 500")
		return
	}
	for i, l := range req.Lines {
		switch l.Align {
		case "", AlignLeft, AlignCenter, AlignRight:
		default:
			writeError(w, http.StatusBadRequest, "invalid", fmt.Sprintf("lines[%d].align: must be left, center or right", i))
			return
		}
	}
	if s.o.Printer == nil {
		writeError(w, http.StatusServiceUnavailable, "no_printer", "no printer is configured")
		return
	}
	st, err := s.o.Printer.Print(r.Context(), req)
	fail := func(status int, code, msg string) {
		writeJSON(w, status, map[string]any{"error": apiError{code, msg}, "status": st})
	}
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, PrintResponse{Status: st})
	case errors.Is(err, ErrPaperOut):
		fail(http.StatusConflict, "paper_out", "the printer is out of paper")
	case errors.Is(err, ErrCoverOpen):
		fail(http.StatusConflict, "cover_open", "the printer's cover is open")
	case errors.Is(err, ErrPrinterOffline):
		fail(http.StatusServiceUnavailable, "printer_offline", "the printer is offline")
	default:
		s.log.Warn("print failed", "err", err)
		fail(http.StatusBadGateway, "printer_error", "the printer failed")
	}
}
