package kiosk

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kioskedge/kioskedge/agent/localapi"
	"github.com/kioskedge/kioskedge/drivers/escpos"
	"github.com/kioskedge/kioskedge/drivers/idcard"
	"github.com/kioskedge/kioskedge/drivers/sscard"
)

// The adapters from the drivers' types to localapi's interfaces. Their
// errors keep the driver's text (which never holds personal data) wrapped
// under localapi's sentinels.

func date(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.DateOnly)
}

// idcardReader adapts an idcard.Reader to localapi.CardReader.
type idcardReader struct{ r *idcard.Reader }

func (a idcardReader) ReadCard(ctx context.Context) (localapi.Card, error) {
	c, err := a.r.ReadCard(ctx)
	if err != nil {
		return localapi.Card{}, idcardErr(err)
	}
	return localapi.Card{Kind: "idcard", Fields: map[string]any{
		"name": c.Name, "sex": string(c.Sex), "ethnicity": c.Ethnicity, "birth_date": date(c.BirthDate),
		"address": c.Address, "number": c.Number, "issuer": c.Issuer, "valid_from": date(c.ValidFrom),
		"valid_until": date(c.ValidUntil), "long_term": c.LongTerm, "expired": c.ExpiredAt(time.Now()),
	}}, nil
}

func idcardErr(err error) error {
	switch {
	case errors.Is(err, idcard.ErrNoCard):
		return fmt.Errorf("%w: %w", localapi.ErrNoCard, err)
	case errors.Is(err, idcard.ErrTimeout):
		return fmt.Errorf("%w: %w", localapi.ErrCardTimeout, err)
	case errors.Is(err, idcard.ErrOffline), errors.Is(err, idcard.ErrClosed):
		return fmt.Errorf("%w: %w", localapi.ErrReaderOffline, err)
	case errors.Is(err, idcard.ErrCardRemoved), errors.Is(err, idcard.ErrMalformed),
		errors.Is(err, idcard.ErrBadField), errors.Is(err, idcard.ErrChecksum):
		return fmt.Errorf("%w: %w", localapi.ErrCardUnreadable, err)
	}
	return err
}

// sscardReader adapts an sscard.Reader to localapi.CardReader.
type sscardReader struct{ r *sscard.Reader }

func (a sscardReader) ReadCard(ctx context.Context) (localapi.Card, error) {
	c, err := a.r.ReadCard(ctx)
	if err != nil {
		return localapi.Card{}, sscardErr(err)
	}
	return localapi.Card{Kind: "sscard", Fields: map[string]any{
		"card_id": c.CardID, "region": c.Region, "card_type": c.CardType, "spec_version": c.SpecVersion,
		"issued": date(c.Issued), "valid_until": date(c.ValidUntil), "card_number": c.CardNumber,
		"ssn": c.SSN, "name": c.Name, "sex": c.Sex, "ethnicity": c.Ethnicity, "birth": date(c.Birth),
	}}, nil
}

func sscardErr(err error) error {
	switch {
	case errors.Is(err, sscard.ErrNoCard):
		return fmt.Errorf("%w: %w", localapi.ErrNoCard, err)
	case errors.Is(err, sscard.ErrTimeout):
		return fmt.Errorf("%w: %w", localapi.ErrCardTimeout, err)
	case errors.Is(err, sscard.ErrOffline), errors.Is(err, sscard.ErrClosed):
		return fmt.Errorf("%w: %w", localapi.ErrReaderOffline, err)
	case errors.Is(err, sscard.ErrCardRemoved), errors.Is(err, sscard.ErrWrongApplication),
		errors.Is(err, sscard.ErrLocked), errors.Is(err, sscard.ErrMalformed):
		return fmt.Errorf("%w: %w", localapi.ErrCardUnreadable, err)
	}
	return err
}

// printer adapts an escpos.Printer to localapi.Printer.
type printer struct{ p *escpos.Printer }

var aligns = map[localapi.Align]escpos.Alignment{"": escpos.Left, localapi.AlignLeft: escpos.Left,
	localapi.AlignCenter: escpos.Center, localapi.AlignRight: escpos.Right}

func receipt(r localapi.Receipt) escpos.Receipt {
	out := escpos.Receipt{Title: r.Title, Cut: escpos.NoCut}
	for _, l := range r.Lines {
		out.Lines = append(out.Lines, escpos.Line{Text: l.Text, Bold: l.Bold, DoubleWidth: l.Double,
			DoubleHeight: l.Double, Align: aligns[l.Align]})
	}
	if r.QR != "" {
		out.QR = &escpos.QR{Data: r.QR, Align: escpos.Center}
	}
	if r.Cut {
		out.Cut = escpos.PartialCut
	}
	return out
}

func (a printer) Print(ctx context.Context, r localapi.Receipt) (localapi.PrinterStatus, error) {
	st, err := a.p.Print(ctx, receipt(r))
	ls := localapi.PrinterStatus{PaperOut: st.PaperOut, PaperNearEnd: st.PaperNearEnd, CoverOpen: st.CoverOpen,
		Offline: st.Offline, Error: st.Error || st.CutterError || st.Unrecoverable}
	if err == nil {
		return ls, nil
	}
	if code, ok := escpos.CodeOf(err); ok {
		switch code {
		case escpos.PaperOut:
			return ls, fmt.Errorf("%w: %w", localapi.ErrPaperOut, err)
		case escpos.CoverOpen:
			return ls, fmt.Errorf("%w: %w", localapi.ErrCoverOpen, err)
		case escpos.Offline, escpos.NoReply, escpos.Disconnected:
			return ls, fmt.Errorf("%w: %w", localapi.ErrPrinterOffline, err)
		}
	}
	if errors.Is(err, escpos.ErrClosed) {
		return ls, fmt.Errorf("%w: %w", localapi.ErrPrinterOffline, err)
	}
	return ls, err
}
