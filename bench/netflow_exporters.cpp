// SPDX-License-Identifier: Apache-2.0
// Many exporters at once: opens N UDP sockets on 127.0.0.1 (N distinct exporters, one source port
// each) and has every one send each UDP export payload of a capture (templates included) to PORT,
// paced at RATE datagrams/s, ROUNDS times. bench/netflow_memory.sh reads flowd's memory around it.
//   flowd_netflow_exporters PCAP PORT EXPORTERS ROUNDS RATE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "collector/pcap_reader.hpp"

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s PCAP PORT EXPORTERS ROUNDS RATE\n", argv[0]);
    return 2;
  }
  std::vector<std::vector<std::uint8_t>> payloads;
  std::size_t skipped = 0;
  flowd::collector::read_capture(
      argv[1],
      [&](const flowd::collector::CapturedPayload& p) {
        if (!p.tcp) payloads.push_back(p.bytes);
      },
      skipped);
  const int port = std::atoi(argv[2]);
  const long exporters = std::atol(argv[3]), rounds = std::atol(argv[4]);
  const double rate = std::atof(argv[5]);
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, static_cast<rlim_t>(exporters + 64));
  setrlimit(RLIMIT_NOFILE, &rl);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(static_cast<std::uint16_t>(port));
  std::vector<int> fds;
  for (long i = 0; i < exporters; ++i) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
      std::perror("socket");
      return 1;
    }
    fds.push_back(fd);
  }
  timespec start{};
  clock_gettime(CLOCK_MONOTONIC, &start);
  long sent = 0;
  for (long r = 0; r < rounds; ++r)
    for (const auto& p : payloads)
      for (int fd : fds) {
        if (send(fd, p.data(), p.size(), 0) > 0) ++sent;
        // Pace so that the collector's socket buffer, not this loop, is what is measured.
        timespec now{};
        clock_gettime(CLOCK_MONOTONIC, &now);
        const double due = static_cast<double>(sent) / rate;
        const double el = static_cast<double>(now.tv_sec - start.tv_sec) +
                          static_cast<double>(now.tv_nsec - start.tv_nsec) / 1e9;
        if (due > el) {
          timespec ts{static_cast<time_t>(due - el),
                      static_cast<long>(
                          (due - el - static_cast<double>(static_cast<long>(due - el))) * 1e9)};
          nanosleep(&ts, nullptr);
        }
      }
  for (int fd : fds) close(fd);
  std::printf("exporters=%ld payloads_per_exporter=%zu rounds=%ld datagrams=%ld\n", exporters,
              payloads.size(), rounds, sent);
  return 0;
}
