// Package faultproxy is a TCP proxy on loopback that injects network
// faults between a client (the agent) and a server (the broker): cutting
// every connection, black-holing traffic, refusing new connections (a
// partition), added one-way latency and a bandwidth limit.
//
// Faults are switched at run time and apply to connections already open.
// A black hole holds bytes rather than discarding them, as TCP would keep
// retransmitting across a dead route: when it lifts, what was sent arrives,
// unless the connection was cut meanwhile. Latency is pipelined (each chunk
// is delivered its delay after it was read, without serialising chunks), so
// it does not also cap throughput.
//
// The proxy owns all its goroutines; Close stops and waits for them.
package faultproxy
