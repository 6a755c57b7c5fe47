// SPDX-License-Identifier: Apache-2.0
// A Kafka cluster for the tests: librdkafka's mock cluster (rdkafka_mock.h), which speaks the real
// Kafka protocol over TCP on loopback, in a process of its own so that flowd and kcat reach it as
// they would reach a broker.
//   kafka_mock_cluster [--brokers N] [--topic NAME[:PARTITIONS]]... [--missing NAME]...
// prints "bootstrap HOST:PORT[,...]" on stdout once it listens, then reads commands on stdin, one a
// line, answering "ok" (or "error ..."):
//   down ID / up ID      broker ID (1..N) stops / starts answering (connections are closed)
//   topic NAME [PARTS]   creates a topic
//   quit                 (or end of input) exits
// --missing NAME: the cluster answers UNKNOWN_TOPIC_OR_PART for NAME, as a cluster with
// auto.create.topics.enable=false does for a topic nobody created.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  int brokers = 1;
  std::vector<std::pair<std::string, int>> topics;
  std::vector<std::string> missing;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) {
      std::cerr << "usage: kafka_mock_cluster [--brokers N] [--topic NAME[:PARTITIONS]]... "
                   "[--missing NAME]...\n";
      return 2;
    }
    std::string v = argv[++i];
    if (a == "--brokers") {
      brokers = std::atoi(v.c_str());
    } else if (a == "--topic") {
      auto colon = v.find(':');
      topics.emplace_back(v.substr(0, colon),
                          colon == std::string::npos ? 1 : std::atoi(v.c_str() + colon + 1));
    } else if (a == "--missing") {
      missing.push_back(v);
    } else {
      std::cerr << "unknown option " << a << "\n";
      return 2;
    }
  }
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!rk) {
    std::cerr << "rd_kafka_new: " << err << "\n";
    return 1;
  }
  rd_kafka_mock_cluster_t* mc = rd_kafka_mock_cluster_new(rk, brokers);
  if (!mc) {
    std::cerr << "rd_kafka_mock_cluster_new failed\n";
    return 1;
  }
  for (const auto& [name, parts] : topics)
    if (auto e = rd_kafka_mock_topic_create(mc, name.c_str(), parts, 1)) {
      std::cerr << "topic " << name << ": " << rd_kafka_err2str(e) << "\n";
      return 1;
    }
  for (const auto& name : missing)
    rd_kafka_mock_topic_set_error(mc, name.c_str(), RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
  std::cout << "bootstrap " << rd_kafka_mock_cluster_bootstraps(mc) << std::endl;
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string cmd;
    in >> cmd;
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (cmd == "down" || cmd == "up") {
      int id = 0;
      in >> id;
      e = cmd == "down" ? rd_kafka_mock_broker_set_down(mc, id)
                        : rd_kafka_mock_broker_set_up(mc, id);
    } else if (cmd == "topic") {
      std::string name;
      int parts = 1;
      in >> name >> parts;
      e = rd_kafka_mock_topic_create(mc, name.c_str(), parts, 1);
    } else if (cmd == "quit") {
      break;
    } else if (!cmd.empty()) {
      std::cout << "error unknown command " << cmd << std::endl;
      continue;
    }
    if (e)
      std::cout << "error " << rd_kafka_err2str(e) << std::endl;
    else
      std::cout << "ok" << std::endl;
  }
  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(rk);
  return 0;
}
