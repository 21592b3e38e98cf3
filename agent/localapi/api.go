package localapi

import (
	"context"
	"errors"

	"github.com/kioskedge/kioskedge/drivers/credential"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// Outbox stores a record durably (sync/outbox.Outbox.Append): a returned
// seq is never lost.
type Outbox interface {
	Append(ctx context.Context, r wire.Record) (uint64, error)
}

// OnceAppender is an Outbox that also keeps a durable idempotency index
// (sync/outbox.Outbox.AppendOnce): in the record's own transaction it
// stores the record only if key is new (prior nil), else stores nothing
// and returns the key's first sequence and meta. When Options.Outbox
// implements it, an Idempotency-Key holds across restarts and crashes;
// otherwise only within one process (doc.go).
type OnceAppender interface {
	AppendOnce(ctx context.Context, r wire.Record, key, meta []byte) (seq uint64, prior []byte, err error)
}

// Protector protects credentials put into transaction records.
type Protector interface {
	// Hash returns the credential's keyed hash (the allowlist's site key).
	Hash(c credential.Credential) string
	// Seal returns raw sealed to the hub's public key, or "" and nil when
	// no hub key is configured (the record then has no sealed value).
	Seal(raw []byte) (string, error)
}

// Card is one card read: the reader's kind ("idcard", "sscard") and its
// decoded fields, which are personal data (never logged).
type Card struct {
	Kind   string         `json:"kind"`
	Fields map[string]any `json:"fields"`
}

// CardReader reads the card presented to one reader. ReadCard returns
// promptly; errors are (or wrap) ErrNoCard, ErrCardTimeout,
// ErrReaderOffline, ErrCardUnreadable, or anything else for a reader fault.
type CardReader interface {
	ReadCard(ctx context.Context) (Card, error)
}

// Card reader errors the adapters map their drivers' errors to.
var (
	ErrNoCard         = errors.New("localapi: no card")
	ErrCardTimeout    = errors.New("localapi: reader did not answer")
	ErrReaderOffline  = errors.New("localapi: reader offline")
	ErrCardUnreadable = errors.New("localapi: card unreadable")
)

// Align is a receipt line's alignment: "left" (default), "center", "right".
type Align string

// The alignments.
const (
	AlignLeft   Align = "left"
	AlignCenter Align = "center"
	AlignRight  Align = "right"
)

// Line is one receipt line.
type Line struct {
	Text   string `json:"text"`
	Bold   bool   `json:"bold,omitempty"`
	Double bool   `json:"double,omitempty"` // double width and height
	Align  Align  `json:"align,omitempty"`
}

// Receipt is what POST /v1/print prints.
type Receipt struct {
	Title string `json:"title"`
	Lines []Line `json:"lines"`
	QR    string `json:"qr,omitempty"` // printed as a QR code after the lines
	Cut   bool   `json:"cut"`
}

// PrinterStatus is the printer's state after a print.
type PrinterStatus struct {
	PaperOut     bool `json:"paper_out"`
	PaperNearEnd bool `json:"paper_near_end"`
	CoverOpen    bool `json:"cover_open"`
	Offline      bool `json:"offline"`
	Error        bool `json:"error"`
}

// Printer prints receipts. Print returns the status after printing, with
// an error that is (or wraps) ErrPaperOut, ErrCoverOpen, ErrPrinterOffline,
// or anything else for a printer fault.
type Printer interface {
	Print(ctx context.Context, r Receipt) (PrinterStatus, error)
}

// Printer errors the adapter maps its driver's errors to.
var (
	ErrPaperOut       = errors.New("localapi: paper out")
	ErrCoverOpen      = errors.New("localapi: cover open")
	ErrPrinterOffline = errors.New("localapi: printer offline")
)

// HealthSource gives the devices' health (agent/devices.Monitor.Health).
type HealthSource interface {
	Health() []wire.DeviceHealth
}
