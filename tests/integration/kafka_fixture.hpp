// SPDX-License-Identifier: Apache-2.0
// A Kafka cluster for a test (kafka_mock_cluster: librdkafka's mock brokers in a process of their
// own, the Kafka protocol over TCP on loopback) and kcat, the independent consumer.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "harness.hpp"

namespace flowd::test {

inline bool have_kcat() {
  return ::access("/usr/bin/kcat", X_OK) == 0;
}

class KafkaCluster {
 public:
  // `args`: kafka_mock_cluster's options (--topic NAME[:PARTS], --missing NAME, --brokers N).
  explicit KafkaCluster(const std::vector<std::string>& args) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0)
      throw std::runtime_error("pipe2");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      std::vector<char*> argv{const_cast<char*>(FLOWD_KAFKA_MOCK_CLUSTER)};
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    to_ = ::fdopen(in[1], "w");
    from_ = ::fdopen(out[0], "r");
    std::string first = line();
    if (first.rfind("bootstrap ", 0) != 0)
      throw std::runtime_error("kafka_mock_cluster said: " + first);
    bootstrap_ = first.substr(10);
  }
  ~KafkaCluster() {
    if (to_) std::fclose(to_);  // end of input: it exits
    if (from_) std::fclose(from_);
    int status = 0;
    for (int i = 0; i < 50 && ::waitpid(pid_, &status, WNOHANG) == 0; ++i) ::usleep(100000);
    if (::waitpid(pid_, &status, WNOHANG) == 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
    }
  }
  KafkaCluster(const KafkaCluster&) = delete;
  KafkaCluster& operator=(const KafkaCluster&) = delete;

  const std::string& bootstrap() const { return bootstrap_; }
  // "down 1", "up 1", "topic NAME 2": the answer ("ok" or "error ...").
  std::string command(const std::string& cmd) {
    std::fprintf(to_, "%s\n", cmd.c_str());
    std::fflush(to_);
    return line();
  }

  // Every message of `topic` from the beginning, as kcat -J prints them (topic, partition,
  // offset, key, payload, ...), read by kcat over TCP.
  std::vector<nlohmann::json> consume(const std::string& topic) const {
    std::string out;
    run_shell("timeout 30 kcat -q -b " + bootstrap_ + " -C -t " + topic +
                  " -o beginning -e -J -X topic.metadata.refresh.interval.ms=100 2>/dev/null",
              "", out);
    std::vector<nlohmann::json> msgs;
    std::size_t pos = 0;
    while (pos < out.size()) {
      std::size_t nl = out.find('\n', pos);
      if (nl == std::string::npos) nl = out.size();
      std::string l = out.substr(pos, nl - pos);
      pos = nl + 1;
      if (l.empty()) continue;
      auto j = nlohmann::json::parse(l, nullptr, false);
      if (!j.is_discarded() && j.contains("payload")) msgs.push_back(std::move(j));
    }
    return msgs;
  }

 private:
  std::string line() {
    char buf[4096];
    if (!std::fgets(buf, sizeof buf, from_)) return "";
    std::string s(buf);
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    return s;
  }
  pid_t pid_ = -1;
  FILE* to_ = nullptr;
  FILE* from_ = nullptr;
  std::string bootstrap_;
};

}  // namespace flowd::test
