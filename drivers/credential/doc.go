// Package credential is the shared leaf type for everything a resident
// presents: a Wiegand or OSDP card, a keypad PIN, a resident ID card, a
// social security card or a QR token. Drivers produce a Credential; the
// access engine hashes its normalised form with the site key and looks that
// up (DESIGN.md §7); nothing downstream needs the raw number.
//
// Numbers are personal data. A Credential formats itself masked everywhere
// a log line could reach it (String, LogValue, GoString), so passing one to
// slog or fmt never leaks the number; only Normalized returns it whole, for
// hashing.
package credential
