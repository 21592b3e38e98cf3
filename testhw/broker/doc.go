// Package broker starts MQTT brokers on loopback for tests and for the demo:
// an in-process mochi-mqtt server (Kind Mochi) or a real mosquitto
// subprocess (Kind Mosquitto).
//
// A Broker owns a fixed loopback port for its whole life: Stop closes the
// port, Restart brings the same kind of broker back on the same port, so
// clients configured with URL reconnect to it as they would to a broker
// that rebooted. Neither kind keeps sessions or messages across a restart
// (no persistence), like a broker that lost its state.
//
// The core API takes no *testing.T so cmd/kioskdemo can use it; Each is the
// helper that runs a test body against both kinds. No package under testhw
// may be linked into kioskd.
package broker
