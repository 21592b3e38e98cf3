package escpos

// Line is one line of receipt text with its style.
type Line struct {
	Text         string
	Bold         bool
	DoubleWidth  bool
	DoubleHeight bool
	Align        Alignment
}

// QR is a QR code printed on a receipt.
type QR struct {
	Data   string
	Module uint8   // module size in dots, 1–16; 0 means 6
	EC     ECLevel // 0 means M
	Align  Alignment
}

// CutMode says how a receipt ends.
type CutMode int

// Cut modes.
const (
	NoCut CutMode = iota
	PartialCut
	FullCut
)

// Receipt is what Print prints: an optional title (centred, bold, double
// size), lines, an optional QR code, then FeedBeforeCut blank lines and the
// cut.
type Receipt struct {
	Title         string
	Lines         []Line
	QR            *QR
	FeedBeforeCut uint8 // 0 means 3, so the cut clears the last line
	Cut           CutMode
}

// EncodeReceipt returns the bytes that print r (§6): ESC @, FS &, the
// title, each line with its style set before it and reset after it, the QR
// code, the feed and the cut. It returns an error wrapping ErrEncode when a
// text or the QR code cannot be encoded.
func EncodeReceipt(r Receipt) ([]byte, error) {
	out := append(Initialize(), ChineseMode(true)...)
	line := func(l Line) error {
		t, err := Text(l.Text)
		if err != nil {
			return err
		}
		out = append(out, Align(l.Align)...)
		if l.Bold {
			out = append(out, Bold(true)...)
		}
		if l.DoubleWidth || l.DoubleHeight {
			out = append(out, Size(l.DoubleWidth, l.DoubleHeight)...)
		}
		out = append(out, t...)
		out = append(out, LF)
		if l.DoubleWidth || l.DoubleHeight {
			out = append(out, Size(false, false)...)
		}
		if l.Bold {
			out = append(out, Bold(false)...)
		}
		return nil
	}
	if r.Title != "" {
		if err := line(Line{Text: r.Title, Bold: true, DoubleWidth: true, DoubleHeight: true, Align: Center}); err != nil {
			return nil, err
		}
	}
	for _, l := range r.Lines {
		if err := line(l); err != nil {
			return nil, err
		}
	}
	if r.QR != nil {
		q, err := QRCode([]byte(r.QR.Data), r.QR.Module, r.QR.EC)
		if err != nil {
			return nil, err
		}
		out = append(out, Align(r.QR.Align)...)
		out = append(out, q...)
		out = append(out, LF)
	}
	out = append(out, Align(Left)...)
	if r.Cut != NoCut {
		feed := r.FeedBeforeCut
		if feed == 0 {
			feed = 3
		}
		out = append(out, FeedLines(feed)...)
		out = append(out, Cut(r.Cut == PartialCut)...)
	}
	return out, nil
}
