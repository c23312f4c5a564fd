// Package jetstream keeps a broker's or a channel's events in NATS JetStream, so that several
// Flick servers share one broker: a Stream is a store.Store on a JetStream stream, and its
// subscriptions are durable pull consumers that every server consuming them shares. It must
// never import the broker, channel or server packages: they pick a store, this package only
// provides one.
//
// # Names
//
// A store is named by a dotted id whose tokens are DNS labels (lowercase letters, digits and
// '-'), such as broker.default.orders. Its records are published on the subject "flick." + id
// and kept in the stream "FLICK_" + id with every '.' replaced by '_'
// (FLICK_broker_default_orders). A token cannot contain '_', so the mapping can be undone and
// two ids never share a stream. A subscription is the durable consumer of the same name, made
// of letters, digits, '-' and '_'.
//
// # Delivery
//
// Records are acknowledged by JetStream before Append returns; with the server's default
// settings that means they are in the server's memory and written to its files, which the
// server syncs periodically (sync_interval, or always when the server runs with sync_always).
//
// A subscription's MaxAckPending is its concurrency, counted across every server consuming
// it: with 1, one record is in flight anywhere and records are handled in order. A record
// whose handle returns false is negatively acknowledged and comes back first. While a handle
// runs its record is kept from being redelivered elsewhere by "in progress" acknowledgements;
// a server that dies mid-record has it redelivered once the ack wait (5 s) passes.
// Delivery is at least once: a record may be handled again after a crash or a lost ack.
// JetStream does not remember a nak across its own restart: a record that was naked (or in
// flight) when the JetStream server stopped comes back only once its ack wait has passed, and
// with concurrency 1 it holds up the records behind it until then.
//
// If a subscription's consumer disappears while it is being consumed (another server deleted
// it, or the JetStream server lost its state), Consume reports it and creates it again at the
// end of the stream.
package jetstream
