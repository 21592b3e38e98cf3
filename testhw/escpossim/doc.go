// Package escpossim simulates an ESC/POS receipt printer: the device side of
// firmware-specs/escpos.md, written from the spec and independent of
// drivers/escpos (it must not import it).
//
// The [Printer] parses the byte stream it receives and renders it to a text
// "paper" ([Printer.Paper]) that tests compare with golden files. Notation,
// one printed line per text line:
//
//	C|<b>TITLE</b>      alignment prefix L|, C| or R|; then the text
//	L|plain <w>wide</w> <b>bold</b> <h>tall</h> <wh>both</wh>
//	C|[QR:<data>]       a printed QR code (GS ( k fn 81), data as stored
//	--- cut ---         GS V full cut ("--- cut (partial) ---" for partial)
//
// Text in Chinese mode (FS &) is decoded from GB18030; outside it, bytes
// above 0x7F render as '?'. A blank line (LF with nothing before it) is an
// empty line; ESC d n renders as n LF. An unknown command renders as
// "[?<hex>]" and is counted.
//
// DLE EOT n is answered at once with a status byte built from the settable
// state (paper out, paper near end, cover open). While paper is out or the
// cover is open, print data is discarded, as a real printer does. Faults:
// [Silent] (no replies), [Garbage] (replies that are not status bytes);
// unplugging is the pty pair's Unplug: Serve returns when its link fails
// and is called again with the new link after Replug.
package escpossim
