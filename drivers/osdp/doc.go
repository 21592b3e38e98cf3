// Package osdp is the control-panel (CP) side of OSDP v2.2 over an RS-485
// multi-drop bus, as specified in firmware-specs/osdp.md.
//
// It has two layers:
//
//   - A pure codec: [Encode], [Decode] and the stream [Framer] (SOM, LEN,
//     CTRL with sequence number, CRC-16 or checksum, optional security
//     control block and MAC); [CRC16] and [Checksum]; reply parsers
//     ([ParseIdentity], [ParseRaw], …) and command records ([LEDCommand],
//     …); and the secure channel as pure functions ([DeriveSessionKeys],
//     [ClientCryptogram], [ComputeMAC], [EncryptData], …) plus [Session],
//     the MAC chain of one established channel. None of it touches a port.
//   - The control panel [CP]: one polling goroutine (run by [CP.Run]) that
//     owns the port and talks to every configured reader in turn: ID/CAP
//     interrogation, the secure-channel handshake (install mode with SCBK-D
//     then osdp_KEYSET to the reader's own key), osdp_POLL for card reads,
//     keypad entries and local status, and the output commands queued by
//     [CP.LED], [CP.Buzzer], [CP.Text] and [CP.SetKey]. Card reads and
//     keypad entries become credential.Credential values; health per
//     reader is a devstatus.Tracker.
//
// Errors are sentinels prefixed "osdp:" (ErrBadCRC, ErrTimeout, …) and
// *NAKError for a reader's refusal. Card numbers and PINs are personal
// data: the package never logs them (DESIGN.md §7).
package osdp
