// Package allowpush is the hub side of publishing an allowlist
// (firmware-specs/hub-allowlist.md §7): it parses the entries and
// schedules CSVs into allowlist entries keyed by the site key's hash of
// each credential, and publishes them as the next version of a hubal list
// directory, with the delta from the version before when the schedules did
// not change. "hubd allowlist push" is a thin command line over it; the demo
// uses it to push its residents' list.
//
// Errors name the file, line and column of a bad field and never hold a
// raw credential number.
package allowpush
