// SPDX-License-Identifier: Apache-2.0
#include "backends/kafka/kafka_config.hpp"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "flowd/log.hpp"

namespace flowd::kafka {
namespace {

// A table, one key per entry: kept as written.
// clang-format off
constexpr KeySpec kKeys[] = {
    {"brokers", KeyType::kList, "",
     "Kafka bootstrap servers, host:port (required; librdkafka's bootstrap.servers)"},
    {"topic", KeyType::kString, "flowd.events", "topic of the flow events (one JSON object per message, keyed by the flow's 5-tuple)"},
    {"client_id", KeyType::kString, "flowd", "client.id the brokers see"},
    {"acks", KeyType::kChoice, "all", "acknowledgements a message needs: all (every in-sync replica), 1 (the leader), 0 (none)",
     {}, 0, 0, "all, 1, 0"},
    {"compression", KeyType::kChoice, "lz4", "compression of message batches", {}, 0, 0,
     "none, lz4, zstd, snappy, gzip"},
    {.name = "linger_ms", .type = KeyType::kDuration, .default_value = "5ms",
     .help = "wait this long to fill a batch before sending it (librdkafka's linger.ms)",
     .min = 0, .max = 900000, .unit = DurationUnit::kMilliseconds, .resolution = DurationUnit::kMilliseconds},
    {"batch_size", KeyType::kInt, "1000000", "largest batch of messages sent to a partition at once, in bytes",
     {}, 1, 2147483647},
    {"queue_buffering_max_messages", KeyType::kInt, "100000",
     "messages held for sending (also while the brokers are down or slow); beyond this a message is dropped and "
     "counted (result=\"dropped\"), never waited for", {}, 1, 2147483647},
    {.name = "flush_timeout", .type = KeyType::kDuration, .default_value = "5s",
     .help = "at stop, wait at most this long for the messages still queued to be delivered; the rest are counted "
             "as failed",
     .min = 0, .max = 600000, .unit = DurationUnit::kSeconds, .resolution = DurationUnit::kMilliseconds},
    {"records", KeyType::kBool, "no",
     "the netflow and sflow plugins also publish every decoded record (the `flowd decode` JSON) to records_topic, "
     "keyed by exporter"},
    {"records_topic", KeyType::kString, "flowd.records", "topic of the decoded records (with records = yes)"},
    {.name = "librdkafka.", .type = KeyType::kString, .default_value = "",
     .help = "any other librdkafka property, by its own name (librdkafka.security.protocol = SASL_SSL, "
             "librdkafka.sasl.mechanism, librdkafka.ssl.ca.location, ...); a property librdkafka refuses "
             "stops the configuration with librdkafka's message",
     .prefix = true},
};
// clang-format on

ConfigError key_error(const Section& cfg, std::string_view key, std::string_view why) {
  return ConfigError("[" + cfg.name() + "] " + std::string(key) + ": " + std::string(why));
}

// Properties whose value makes librdkafka load code into the process: a plugin (dlopen() as the
// property is set), an OpenSSL engine or providers (when the SSL context is made).
bool loads_code(std::string_view prop) {
  return prop == "plugin.library.paths" || prop == "ssl.engine.location" || prop == "ssl.providers";
}

void ignore_log(const rd_kafka_t*, int, const char*, const char*) {}

using Conf = std::unique_ptr<rd_kafka_conf_t, decltype(&rd_kafka_conf_destroy)>;

// librdkafka checks every value now, so a typo fails --check-config (and a reload, before anything
// running is stopped), not the start: each property as it is set, then the whole as the producer's
// creation would (rd_kafka_new: the SSL context with its CA, certificate, key and CRL files read,
// the SASL settings). That producer has no bootstrap.servers, so it connects nowhere, and is
// destroyed at once; it runs no kinit (sasl.kerberos.min.time.before.relogin = 0) and fetches no
// OIDC token (sasl.oauthbearer.method = default). What would load code into the process
// (loads_code) is not set here at all: said once in a warning, checked when the backend starts.
void check_with_librdkafka(const Section& cfg, const KafkaConfig& c, std::size_t named,
                           const char* const* named_key) {
  Conf conf(rd_kafka_conf_new(), rd_kafka_conf_destroy);
  char err[512];
  std::vector<std::string> unchecked;
  for (std::size_t i = 0; i < c.properties.size(); ++i) {
    const auto& [prop, value] = c.properties[i];
    if (loads_code(prop)) {
      unchecked.push_back("librdkafka." + prop);
      continue;
    }
    if (prop == "bootstrap.servers" && i < named) {
      // Checked as a value, not given to the trial producer below.
      Conf alone(rd_kafka_conf_new(), rd_kafka_conf_destroy);
      if (rd_kafka_conf_set(alone.get(), prop.c_str(), value.c_str(), err, sizeof err) !=
          RD_KAFKA_CONF_OK)
        throw key_error(cfg, named_key[i], std::string("librdkafka refuses it: ") + err);
      continue;
    }
    if (rd_kafka_conf_set(conf.get(), prop.c_str(), value.c_str(), err, sizeof err) !=
        RD_KAFKA_CONF_OK)
      throw key_error(cfg, i < named ? std::string(named_key[i]) : "librdkafka." + prop,
                      std::string("librdkafka refuses it: ") + err);
  }
  if (!unchecked.empty()) {
    static std::atomic<bool> said{false};
    if (!said.exchange(true))
      get_logger("config")->warn(
          "[{}] {}: not checked before the backend starts (librdkafka loads code from it); a value "
          "librdkafka refuses then stops the backend",
          cfg.name(), fmt::format("{}", fmt::join(unchecked, ", ")));
    // An OpenSSL engine or provider may be what reads the key: the SSL files are checked at start.
    for (const auto& u : unchecked)
      if (u != "librdkafka.plugin.library.paths") return;
  }
  // Best effort: these properties exist only in a librdkafka built with the feature.
  rd_kafka_conf_set(conf.get(), "sasl.kerberos.min.time.before.relogin", "0", err, sizeof err);
  if (std::any_of(c.properties.begin(), c.properties.end(),
                  [](const auto& p) { return p.first == "sasl.oauthbearer.method"; }))
    rd_kafka_conf_set(conf.get(), "sasl.oauthbearer.method", "default", err, sizeof err);
  rd_kafka_conf_set_log_cb(conf.get(), &ignore_log);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), err, sizeof err);
  if (!rk)
    throw ConfigError("[" + cfg.name() +
                      "] librdkafka refuses this configuration: " + std::string(err));
  conf.release();  // rd_kafka_new owns it when it succeeds
  rd_kafka_destroy(rk);
}

}  // namespace

std::span<const KeySpec> config_keys() {
  return kKeys;
}

std::string topic_name_problem(std::string_view topic) {
  if (topic.empty()) return "empty";
  if (topic.size() > 249) return "longer than 249 characters";
  if (topic == "." || topic == "..") return "'.' and '..' are not topic names";
  for (char c : topic)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-'))
      return "a Kafka topic name has only letters, digits, '.', '_' and '-'";
  return {};
}

KafkaConfig KafkaConfig::from(const Section& cfg) {
  KafkaConfig c;
  std::string brokers;
  for (const auto& b : cfg.get_list("brokers")) brokers += (brokers.empty() ? "" : ",") + b;
  if (brokers.empty())
    throw key_error(cfg, "brokers", "required: the Kafka bootstrap servers, host:port[, ...]");
  c.brokers = brokers;
  c.topic = cfg.get("topic");
  c.records = cfg.get_bool("records");
  c.records_topic = cfg.get("records_topic");
  for (const char* key : {"topic", "records_topic"})
    if (auto why = topic_name_problem(cfg.get(key)); !why.empty())
      throw key_error(cfg, key, "'" + cfg.get(key) + "': " + why);
  if (c.records && c.records_topic == c.topic)
    throw key_error(cfg, "records_topic",
                    "must differ from topic (events and records are two kinds)");
  c.flush_timeout = cfg.get_duration("flush_timeout");
  c.queue_max_messages = static_cast<std::size_t>(cfg.get_int("queue_buffering_max_messages"));

  const std::string compression = cfg.get("compression");
  // Named keys first, each as the librdkafka property it stands for.
  const std::pair<const char*, std::string> named[] = {
      {"bootstrap.servers", brokers},
      {"client.id", cfg.get("client_id")},
      {"acks", cfg.get("acks") == "all" ? "-1" : cfg.get("acks")},
      {"compression.codec", compression},
      {"linger.ms", std::to_string(cfg.get_duration("linger_ms").count())},
      {"batch.size", cfg.get("batch_size")},
      {"queue.buffering.max.messages", cfg.get("queue_buffering_max_messages")},
  };
  const char* named_key[] = {"brokers",
                             "client_id",
                             "acks",
                             "compression",
                             "linger_ms",
                             "batch_size",
                             "queue_buffering_max_messages"};
  for (const auto& [prop, value] : named) c.properties.emplace_back(prop, value);
  for (const auto& [prop, value] : cfg.with_prefix("librdkafka.")) {
    for (std::size_t i = 0; i < std::size(named); ++i)
      if (prop == named[i].first)
        throw key_error(cfg, "librdkafka." + prop,
                        std::string("set it with the key '") + named_key[i] + "' instead");
    // What flowd relies on: its delivery reports and its own counting.
    if (prop == "dr_cb" || prop == "dr_msg_cb" || prop == "opaque")
      throw key_error(cfg, "librdkafka." + prop, "flowd sets this itself");
    c.properties.emplace_back(prop, value);
  }
  check_with_librdkafka(cfg, c, std::size(named), named_key);
  return c;
}

}  // namespace flowd::kafka
