// Package pubsub is rtstream's Kafka layer: client settings that lose nothing,
// topic creation, the embedded development broker, a Watermill publisher that
// batches through Sarama's async producer, the stream registry kept in a compacted
// topic, and the results topic followed live and replayed for resumes. It knows nothing of
// HTTP.
package pubsub
