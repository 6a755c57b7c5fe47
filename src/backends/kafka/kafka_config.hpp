// SPDX-License-Identifier: Apache-2.0
// The kafka backend's keys ([backend.kafka]) and their typed, checked values. from() is the one
// place that reads the section; it turns the keys into librdkafka properties and has librdkafka
// check every one (so --check-config refuses what librdkafka would refuse, in its own words).
#pragma once

#include <chrono>
#include <cstddef>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "flowd/config.hpp"

namespace flowd::kafka {

// The key table (names, types, defaults, ranges), for BackendInfo.
std::span<const KeySpec> config_keys();

struct KafkaConfig {
  std::string brokers;  // bootstrap.servers: host:port,host:port
  std::string topic = "flowd.events";
  bool records = false;  // collector plugins publish every decoded record to records_topic
  std::string records_topic = "flowd.records";
  std::chrono::milliseconds flush_timeout{std::chrono::seconds(5)};
  std::size_t queue_max_messages = 100000;  // queue_buffering_max_messages
  // Every librdkafka property to set, in order: the named keys' (bootstrap.servers, client.id,
  // acks, compression.codec, linger.ms, batch.size, queue.buffering.max.messages) and then each
  // `librdkafka.NAME = VALUE` as NAME, VALUE. Each was accepted by rd_kafka_conf_set.
  std::vector<std::pair<std::string, std::string>> properties;

  // Throws ConfigError("[backend.kafka] KEY: why") for no brokers, a topic name Kafka refuses, a
  // `librdkafka.` property that repeats a named key, or a property librdkafka refuses (its
  // message).
  static KafkaConfig from(const Section& cfg);
};

// Kafka's rule for topic names: 1..249 characters of [a-zA-Z0-9._-], not "." or "..". Empty =
// valid, else why not.
std::string topic_name_problem(std::string_view topic);

}  // namespace flowd::kafka
